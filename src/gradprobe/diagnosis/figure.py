"""The one figure of a ProbeReport, drawn from its JSON dict (never recomputes anything).

PANELS maps a panel name (a Section's `panels`) to a function drawing it on one axis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradprobe.plots import COLORS, figure, save


def plot_report(r: dict[str, Any], path: Path,
                panels: list[str] | None = None) -> Path:
    """One panel per name in `panels` (default: speed, snr, activity, shattering): gradient
    speed per layer (with the product bound), batch-gradient SNR per layer, activation /
    co-activation per ReLU layer, input gradient along a segment."""
    panels = panels or ["speed", "snr", "activity", "shattering"]
    r = _numbers(r)
    cols = 2 if len(panels) > 1 else 1
    rows = (len(panels) + cols - 1) // cols
    fig, ax = figure(rows, cols, width=5.2, height=3.4)
    flat = [a for row in ax for a in row]  # figure() never squeezes
    for name, a in zip(panels, flat, strict=False):
        PANELS[name](a, r)
    for a in flat[len(panels):]:
        a.set_axis_off()
    fired = [f["kind"] for f in r["findings"] if f["fired"]]
    fig.suptitle(f"gradprobe: {r['model']} — " + (", ".join(fired) if fired else "no pathology"))
    return save(fig, path)


def _numbers(o: Any) -> Any:
    """The JSON dict with its "inf"/"-inf" strings (non-finite values) back as floats."""
    if isinstance(o, dict):
        return {k: _numbers(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_numbers(v) for v in o]
    return float(o) if o in ("inf", "-inf") else o


def _label(a: Any, title: str, ylabel: str, idx: list[int], names: list[str]) -> None:
    a.set_title(title)
    a.set_xlabel("layer, forward order")
    a.set_ylabel(ylabel)
    _ticks(a, idx, names)
    a.legend()


def _layer_axis(r: dict[str, Any]) -> tuple[list[dict], list[int], list[str]]:
    layers = r["layers"]
    return layers, list(range(len(layers))), [d["name"] for d in layers]


def _speed(a: Any, r: dict[str, Any]) -> None:
    layers, idx, names = _layer_axis(r)
    speed = [d["speed"] if d["speed"] else float("nan") for d in layers]
    a.semilogy(idx, speed, "o-", color=COLORS[0], label="speed mean‖∂ℓ/∂z‖ (measured)")
    if any(d.get("bound") for d in layers):
        a.semilogy(idx, [d["bound"] if d.get("bound") else float("nan") for d in layers], "s--",
                   color=COLORS[3], label="product bound (mean)")
    _label(a, "per-layer gradient speed (first → last layer)",
           "mean per-sample gradient norm (log)", idx, names)


def _snr(a: Any, r: dict[str, Any]) -> None:
    layers, idx, names = _layer_axis(r)
    snr = [d.get("batch_snr") for d in layers]
    pos = [(i, v) for i, v in zip(idx, snr, strict=True) if v is not None and v > 0]
    neg = [(i, -v) for i, v in zip(idx, snr, strict=True) if v is not None and v <= 0]
    if pos:
        a.semilogy(*zip(*pos, strict=True), "o" if neg else "o-", color=COLORS[1],
                   label="B·SNR (measured)")
    if neg:
        a.semilogy(*zip(*neg, strict=True), "x", color=COLORS[3], label="−B·SNR (signal < 0)")
    thr = r["thresholds"]["batch_snr"]
    a.axhline(thr, color="gray", ls=":", label=f"low-SNR threshold ({thr:g})")
    a.set_yscale("log")
    _label(a, "batch-gradient signal-to-noise ratio", "B · ‖Eĝ‖² / E‖ĝ − Eĝ‖² (log)", idx, names)


def _activity(a: Any, r: dict[str, Any]) -> None:
    acts = r["activity"]
    if acts:
        j = list(range(len(acts)))
        a.plot(j, [v["activation"] for v in acts], "o-", label="activation")
        a.plot(j, [v["coactivation"] for v in acts], "s-", label="co-activation")
        a.plot(j, [v["dead_fraction"] for v in acts], "x-", label="dead units")
        a.axhline(0.5, color=COLORS[0], ls=":", lw=1, label="½ (BN nets, Balduzzi Fig. 3)")
        a.axhline(0.25, color=COLORS[1], ls=":", lw=1, label="¼")
        a.set_ylim(-0.02, 1.02)
        _ticks(a, j, [v["name"] for v in acts])
        a.legend()
    else:
        a.text(0.5, 0.5, "no ReLU-like modules", ha="center", va="center",
               transform=a.transAxes)
    a.set_title("unit activity per ReLU-like layer")
    a.set_xlabel("ReLU-like layer, forward order")
    a.set_ylabel("fraction")


def _shattering(a: Any, r: dict[str, Any]) -> None:
    sh = r["shattering"]
    if "trace" in sh:
        tr = sh["trace"]
        a.plot([i / max(1, len(tr) - 1) for i in range(len(tr))], tr, color=COLORS[2])
        a.set_title(f"input gradient along a segment\nlag-1 ACF {sh['lag1']:.2f} (shattered ≤ "
                    f"{r['thresholds']['shattered_lag1']:g}), rel. eff. rank "
                    f"{sh['relative_rank']:.2f}")
        a.set_xlabel("position t on the segment x_a + t(x_b − x_a)")
        a.set_ylabel("directional derivative")
    else:
        a.text(0.5, 0.5, f"input gradients not measured:\n{sh.get('reason')}", ha="center",
               va="center", transform=a.transAxes)
        a.set_title("input gradient along a segment")


PANELS = {"speed": _speed, "snr": _snr, "activity": _activity, "shattering": _shattering}


def _ticks(a: Any, idx: list[int], names: list[str]) -> None:
    step = max(1, len(idx) // 16)  # at most ~16 labels
    a.set_xticks(idx[::step])
    a.set_xticklabels([n[-12:] for n in names[::step]], rotation=45, ha="right", fontsize=7)
