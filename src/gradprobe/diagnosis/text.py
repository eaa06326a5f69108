"""Plain-text rendering of a probe report, one function per section (lines, no trailing blank)."""

from __future__ import annotations

from typing import Any


def _g(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}"


def layers(rows: list[dict]) -> list[str]:
    hdr = (f"{'layer':<22}{'kind':<10}{'|grad|':>10}{'speed':>10}{'bound':>10}"
           f"{'SNR':>10}{'B·SNR':>10}")
    out = [hdr, "-" * len(hdr)]
    for d in rows:
        out.append(f"{d['name'][:21]:<22}{d['kind'][:9]:<10}{_g(d['grad_norm']):>10}"
                   f"{_g(d['speed']):>10}{_g(d['bound']):>10}{_g(d['snr']):>10}"
                   f"{_g(d['batch_snr']):>10}"
                   + ("  (below noise)" if d.get("below_noise") else "")
                   + ("  (BOUND VIOLATED)" if d.get("bound_holds") is False else ""))
    return out


def activity(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    hdr = f"{'activation layer':<22}{'active':>10}{'co-active':>10}{'dead':>8}{'on':>8}"
    return [hdr, "-" * len(hdr)] + [
        f"{a['name'][:21]:<22}{a['activation']:>10.3f}{a['coactivation']:>10.3f}"
        f"{a['dead_fraction']:>8.2f}{a['always_on_fraction']:>8.2f}" for a in rows]


def saturation(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    return [f"{'saturating layer':<22}{'saturated units':>16}"] + [
        f"{s['name'][:21]:<22}{s['saturated_fraction']:>16.2f}" for s in rows]


def shattering(sh: dict) -> list[str]:
    if "lag1" in sh:
        return [f"input gradients: lag-1 autocorrelation {sh['lag1']:.3f} over "
                f"{len(sh['lag1_per_segment'])} segment(s) of {sh['points']} points; "
                f"relative effective rank {sh['relative_rank']:.3f}"]
    return [f"input gradients: not measured ({sh.get('reason')})"]


def report(r: dict, sections: list) -> str:
    """The whole report from its dict: header, notes, each section, verdicts."""
    lines = [f"gradprobe report: {r['model']}, batch {r['batch_size']} "
             f"(per-sample statistics on {r['samples']}), loss {r['loss']:.4g}"]
    lines += [f"  note: {n}" for n in r["notes"]]
    for s in sections:
        value = r[s.key] if s.key in r else r.get("extra", {}).get(s.key)
        body = s.render(value) if value is not None else []
        if body:
            lines += [""] + body
    lines += ["", "verdicts:"]
    for f in r["findings"]:
        mark = "FIRED" if f["fired"] else "ok   "
        lines.append(f"  {mark} {f['kind']:<10} {f['message']}"
                     + (f" [{f['layer']}]" if f["fired"] and f["layer"] else ""))
        lines += [f"             {hint}" for hint in f.get("what_to_try", [])]
    return "\n".join(lines)
