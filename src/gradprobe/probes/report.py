"""`gp.probe(model, loss_fn, batch)`: the papers' gradient measurements for any model, in one call.

Per affine layer (every module with a ≥ 2-D weight, in the order the forward pass calls them):
the speed mean_i ‖∂ℓ_i/∂z^l‖ at the layer's output and, for chains of affine layers and
elementwise activations, the product bound on it (Nielsen, SPEC B1); the batch gradient's norm;
the single-sample gradient SNR with its standard error (Shalev-Shwartz et al. 2017, §3; SPEC A5).
Per ReLU-like layer: activation, co-activation and dead units; per sigmoid/tanh layer: saturated
units (Balduzzi et al. 2017, Figs. 3–4). For float inputs: the input gradient's lag-1
autocorrelation along segments between pairs of inputs and its relative effective rank over the
batch (Balduzzi et al. 2017, Figs. 1, 2, 5). Then a verdict per pathology
(gradprobe.probes.verdicts).

The model is probed as it is (same mode), with dropout off and train-mode batch norm frozen at the
batch's statistics so that samples are independent (gradprobe.probes.state); its modes, buffers,
`.grad`s and the RNG states are restored afterwards.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import vmap

from gradprobe.probes.activity import RELU_LIKE, activity
from gradprobe.probes.hooks import forward_hooks
from gradprobe.probes.layers import affine_chain
from gradprobe.probes.shattering import (
    autocorrelation,
    input_gradients,
    relative_effective_rank,
    segment,
)
from gradprobe.probes.snr import per_sample_grads, snr_from_samples
from gradprobe.probes.state import preserved, sample_independent
from gradprobe.probes.verdicts import Finding, Thresholds, judge
from gradprobe.theory.vanishing import bias_gradient_bound

SATURATING = (nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Softsign)


@dataclass(frozen=True)
class ProbeReport:
    """What `probe` measured; every field is JSON-able (floats, lists, dicts).

    layers: one dict per affine layer call: name, kind, weight_norm, grad_norm (‖∂L/∂θ‖ of the
        batch loss, weight and bias together), speed (mean_i ‖∂ℓ_i/∂z^l‖), bound (mean product
        bound on the speed, or None), bound_holds, snr / snr_se (single-sample), batch_snr (B·snr),
        signal, noise, below_noise.
    activity: per ReLU-like layer: name, activation, coactivation, dead_fraction,
        always_on_fraction. saturation: per sigmoid/tanh layer: name, saturated_fraction.
    shattering: lag1 (mean over segments), lag1_per_segment, relative_rank, points, trace and
        acf of the first segment; or {"reason": ...} when not measurable.
    findings: one per verdict kind. notes: what was changed while probing.
    """

    model: str
    batch_size: int
    samples: int
    loss: float
    layers: list[dict]
    activity: list[dict]
    saturation: list[dict]
    shattering: dict
    findings: list[Finding]
    thresholds: dict
    notes: list[str] = field(default_factory=list)

    @property
    def fired(self) -> list[Finding]:
        """The verdicts that fired."""
        return [f for f in self.findings if f.fired]

    @property
    def healthy(self) -> bool:
        return not self.fired

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        return _jsonable(d)

    def save_json(self, path: str | Path) -> Path:
        """Write the report as JSON (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
        os.replace(tmp, path)
        return path

    def table(self) -> str:
        """The report as plain-text tables."""
        lines = [f"gradprobe report: {self.model}, batch {self.batch_size} "
                 f"(per-sample statistics on {self.samples}), loss {self.loss:.4g}"]
        lines += [f"  note: {n}" for n in self.notes]
        hdr = (f"{'layer':<22}{'kind':<10}{'|grad|':>10}{'speed':>10}{'bound':>10}"
               f"{'SNR':>10}{'B·SNR':>10}")
        lines += ["", hdr, "-" * len(hdr)]
        for d in self.layers:
            lines.append(f"{d['name'][:21]:<22}{d['kind'][:9]:<10}{_g(d['grad_norm']):>10}"
                         f"{_g(d['speed']):>10}{_g(d['bound']):>10}{_g(d['snr']):>10}"
                         f"{_g(d['batch_snr']):>10}"
                         + ("  (below noise)" if d.get("below_noise") else "")
                         + ("  (BOUND VIOLATED)" if d.get("bound_holds") is False else ""))
        if self.activity:
            hdr = f"{'activation layer':<22}{'active':>10}{'co-active':>10}{'dead':>8}{'on':>8}"
            lines += ["", hdr, "-" * len(hdr)]
            for a in self.activity:
                lines.append(f"{a['name'][:21]:<22}{a['activation']:>10.3f}"
                             f"{a['coactivation']:>10.3f}{a['dead_fraction']:>8.2f}"
                             f"{a['always_on_fraction']:>8.2f}")
        if self.saturation:
            lines += ["", f"{'saturating layer':<22}{'saturated units':>16}"]
            lines += [f"{s['name'][:21]:<22}{s['saturated_fraction']:>16.2f}"
                      for s in self.saturation]
        sh = self.shattering
        lines.append("")
        if "lag1" in sh:
            lines.append(f"input gradients: lag-1 autocorrelation {sh['lag1']:.3f} over "
                         f"{len(sh['lag1_per_segment'])} segment(s) of {sh['points']} points; "
                         f"relative effective rank {sh['relative_rank']:.3f}")
        else:
            lines.append(f"input gradients: not measured ({sh.get('reason')})")
        lines += ["", "verdicts:"]
        for f in self.findings:
            mark = "FIRED" if f.fired else "ok   "
            lines.append(f"  {mark} {f.kind:<10} {f.message}"
                         + (f" [{f.layer}]" if f.fired and f.layer else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path) -> Path:
        """Draw the report's one figure (four panels) to a PNG."""
        from gradprobe.probes.figure import plot_report
        return plot_report(self.to_dict(), Path(path))


def _g(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}"


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_jsonable(v) for v in o]
    if isinstance(o, Tensor):
        return _jsonable(o.tolist())
    if isinstance(o, float) and not math.isfinite(o):
        return None if math.isnan(o) else ("inf" if o > 0 else "-inf")
    return o


def _first(x: Any) -> Tensor:
    return x[0] if isinstance(x, tuple | list) else x


def _index(x: Any, idx: slice) -> Any:
    if isinstance(x, tuple | list):
        return type(x)(_index(v, idx) for v in x)
    return x[idx]


def _per_sample_losses(loss_fn: Callable, out: Tensor, y: Any) -> Tensor:
    """(n,) loss of each sample alone: loss_fn on batches of one, vmapped."""
    def one(o: Tensor, t: Any) -> Tensor:
        return loss_fn(o.unsqueeze(0), t.unsqueeze(0) if isinstance(t, Tensor) else t).sum()
    return vmap(one)(out, y)


def _affine_calls(model: nn.Module, x: Any, loss_fn: Callable, y: Any
                  ) -> tuple[list[tuple[str, nn.Module, Tensor]], Tensor, float, bool]:
    """Call order of affine modules with each call's per-sample ‖∂ℓ_i/∂z‖ (n,); the per-sample
    ‖∂ℓ_i/∂output‖ (n,); the batch loss; whether loss and those gradients are finite."""
    names = {m: n for n, m in model.named_modules()}
    calls: list[tuple[str, nn.Module, Tensor]] = []
    count: dict[str, int] = {}

    def hook(m: nn.Module, args: tuple, out: Any) -> None:
        if isinstance(out, Tensor) and out.requires_grad:
            name = names[m] or type(m).__name__
            count[name] = count.get(name, 0) + 1
            calls.append((name if count[name] == 1 else f"{name}#{count[name]}", m, out))

    mods = [m for m in model.modules()
            if isinstance(getattr(m, "weight", None), Tensor) and m.weight.dim() >= 2]
    with forward_hooks(mods, hook), torch.enable_grad():
        out = model(x)
        losses = _per_sample_losses(loss_fn, out, y)  # (n,)
        *grads, gout = torch.autograd.grad(losses.sum(), [c[2] for c in calls] + [out],
                                           allow_unused=True)
    n = losses.shape[0]
    batch_loss = float(loss_fn(out.detach(), y))
    speeds = []
    finite = math.isfinite(batch_loss)
    for (name, m, _), gr in zip(calls, grads, strict=True):
        s = torch.zeros(n) if gr is None else gr.detach().reshape(n, -1).norm(dim=1)
        finite = finite and bool(torch.isfinite(s).all())
        speeds.append((name, m, s))
    out_norm = gout.detach().reshape(n, -1).norm(dim=1)
    return speeds, out_norm, batch_loss, finite


def _product_bound(model: nn.Module, speeds: list, out_norm: Tensor) -> Tensor | None:
    """(n, L) per-sample product bound on ‖δ^l‖ for a chain of affine layers and elementwise
    activations (Nielsen; gradprobe.theory.vanishing), or None for any other net."""
    chain = affine_chain(model)
    if chain is None or [m for _, m, _ in speeds] != [lin for lin, _ in chain]:
        return None
    gammas = [gm for _, gm in chain]
    snorms = [float(torch.linalg.matrix_norm(lin.weight.detach().double(), ord=2))
              for lin, _ in chain]
    unit = torch.tensor(bias_gradient_bound(gammas, snorms, 1.0), dtype=out_norm.dtype)
    return out_norm.unsqueeze(1) * unit.to(out_norm.device)


def _saturation(model: nn.Module, x: Any) -> list[dict]:
    names = {m: n for n, m in model.named_modules()}
    rec: list[dict] = []

    def hook(m: nn.Module, args: tuple, out: Tensor) -> None:
        z = args[0].detach()
        n = z.shape[0]
        if isinstance(m, nn.Sigmoid):
            d = out * (1 - out) / 0.25
        elif isinstance(m, nn.Tanh):
            d = 1 - out.pow(2)
        elif isinstance(m, nn.Softsign):
            d = 1 / (1 + z.abs()).pow(2)
        elif isinstance(m, nn.Hardsigmoid):
            d = ((z > -3) & (z < 3)).to(z.dtype)
        else:  # Hardtanh
            d = ((z > m.min_val) & (z < m.max_val)).to(z.dtype)
        flat = (d.detach().reshape(n, -1) < 0.01).float().mean(0)  # (units,) share saturated
        rec.append({"name": names.get(m, type(m).__name__),
                    "saturated_fraction": float((flat >= 0.95).float().mean())})

    saturating = [m for m in model.modules() if isinstance(m, SATURATING)]
    if not saturating:
        return []
    with forward_hooks(saturating, hook), torch.no_grad():
        model(x)
    return rec


def _shattering(model: nn.Module, x: Any, segments: int, points: int,
                g: torch.Generator) -> dict:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        return {"reason": "inputs are not a floating-point tensor (e.g. token ids)"}
    n = x.shape[0]
    if n < 2:
        return {"reason": "needs at least two inputs"}
    with torch.no_grad():
        out = model(x[:1])
    if not isinstance(out, Tensor):
        return {"reason": "the model's output is not a tensor"}
    r = torch.randn(out[0].numel(), generator=g, dtype=torch.float64).to(out.dtype)
    r = (r / r.norm()).to(x.device)

    def project(o: Tensor) -> Tensor:  # a fixed random direction of the output, (n,)
        return o.reshape(o.shape[0], -1) @ r

    k = max(1, min(segments, n // 2))
    paths = torch.cat([segment(x[2 * j], x[2 * j + 1], points) for j in range(k)])
    grads = input_gradients(model, paths, project).reshape(k, points, -1)
    chords = torch.stack([(x[2 * j + 1] - x[2 * j]).reshape(-1) for j in range(k)])  # (k, D)
    chords = chords / chords.norm(dim=1, keepdim=True).clamp_min(1e-30)
    traces = torch.einsum("kpd,kd->kp", grads, chords)  # directional derivatives (k, points)
    acf = autocorrelation(traces, min(points - 1, 20))
    lag1 = [float(a) for a in acf[:, 1]]
    gb = input_gradients(model, x[: min(n, 256)], project)
    return {
        "lag1": float(sum(v for v in lag1 if math.isfinite(v)) / max(1, len(lag1))),
        "lag1_per_segment": lag1, "points": points,
        "relative_rank": relative_effective_rank(gb, g), "trace": traces[0].tolist(),
        "acf": acf[0].tolist(),
    }


def probe(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    batch: tuple[Any, Any],
    *,
    max_samples: int = 128,
    chunk_size: int | None = 16,
    segments: int = 4,
    points: int = 64,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    max_floats: int = 50_000_000,
) -> ProbeReport:
    """Probe `model` on one batch = (inputs, targets) with `loss_fn(output, targets)`.

    loss_fn must work on a batch of one sample (it is applied per sample for per-sample
    gradients). max_samples: how many samples get per-sample gradients (SNR, bound);
    chunk_size: samples per vmapped chunk (memory). segments × points: inputs along segments
    between pairs of batch inputs for the shattering measure. seed: the random output direction
    whose input gradient is taken, and the Gaussian reference of the effective rank.
    max_floats: memory cap on the per-sample gradients (samples × parameters, 200 MB in float32);
    fewer samples are used when it would be exceeded (said in `notes`).
    """
    x, y = batch
    thresholds = thresholds or Thresholds()
    g = torch.Generator(device="cpu").manual_seed(seed)
    B = _first(x).shape[0]
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    m_ps = min(B, max_samples, max(2, max_floats // max(1, n_params)))
    with preserved(model):
        notes = sample_independent(model, x)
        if m_ps < min(B, max_samples):
            notes.append(f"per-sample gradients on {m_ps} samples only: {n_params} parameters "
                         f"× more samples would exceed max_floats={max_floats:g}")
        speeds, out_norm, batch_loss, finite = _affine_calls(model, x, loss_fn, y)
        bound = _product_bound(model, speeds, out_norm)
        xs, ys = _index(x, slice(0, m_ps)), _index(y, slice(0, m_ps))

        def sample_loss(out: Tensor, t: Any) -> Tensor:
            return loss_fn(out, t).sum()
        with warnings.catch_warnings():  # ops without a vmap rule (e.g. CPU flash attention)
            warnings.filterwarnings("ignore", message=".*performance drop because we have not "
                                    "yet implemented the batching rule", category=UserWarning)
            ps = per_sample_grads(model, sample_loss, xs, ys, chunk_size=chunk_size)
        name_of = {id(p): n for n, p in model.named_parameters()}
        layers = []
        for j, (name, m, s) in enumerate(speeds):
            own = [name_of[id(p)] for p in m.parameters(recurse=False) if id(p) in name_of
                   and name_of[id(p)] in ps]
            G = torch.cat([ps[k].reshape(m_ps, -1) for k in own], dim=1) if own else None
            d: dict[str, Any] = {"name": name, "kind": type(m).__name__,
                                 "weight_norm": float(m.weight.detach().norm()),
                                 "speed": float(s.mean()), "bound": None, "bound_holds": None}
            if G is not None and m_ps >= 2:
                res = snr_from_samples(G)
                d.update(grad_norm=float(G.mean(0).norm()), snr=res.snr, snr_se=(
                    res.signal_se / res.noise if res.noise > 0 else None),
                    batch_snr=res.snr * B, signal=res.signal, noise=res.noise,
                    below_noise=res.below_noise, params=own)
                finite = finite and math.isfinite(res.noise)
            else:
                d.update(grad_norm=None, snr=None, snr_se=None, batch_snr=None, signal=None,
                         noise=None, below_noise=None, params=own)
            if bound is not None:  # measured ‖δ^l‖ against the bound, sample by sample
                d["bound"] = float(bound[:, j].mean())
                d["bound_holds"] = bool((s <= bound[:, j] * (1 + 1e-5) + 1e-12).all())
            layers.append(d)
        acts = []
        if any(isinstance(m, RELU_LIKE) for m in model.modules()):
            st = activity(model, x)
            for j, nm in enumerate(st.names):
                u = st.unit_activation[j]
                acts.append({"name": nm, "activation": float(st.activation[j]),
                             "coactivation": float(st.coactivation[j]),
                             "dead_fraction": float((u == 0).float().mean()),
                             "always_on_fraction": float((u == 1).float().mean())})
        sat = _saturation(model, x)
        shat = _shattering(model, x, segments, points, g)
    findings = judge(layers, acts, sat, shat, finite, thresholds)
    return ProbeReport(
        model=type(model).__name__, batch_size=B, samples=m_ps, loss=batch_loss, layers=layers,
        activity=acts, saturation=sat, shattering=shat, findings=findings,
        thresholds=asdict(thresholds), notes=notes)
