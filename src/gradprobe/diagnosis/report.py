"""`gp.probe(model, loss_fn, batch)`: the papers' gradient measurements for any model, in one call.

Per unit call (every module holding parameters, in forward order; gradprobe.probes.units): the
speed mean_i ‖∂ℓ_i/∂z‖ at its output and, for chains of affine layers and elementwise
activations, the product bound on it (Nielsen, SPEC B1); the batch gradient's norm; the
single-sample gradient SNR with its standard error (Shalev-Shwartz et al. 2017, §3; SPEC A5).
Per ReLU-like layer: activation, co-activation and dead units; per sigmoid/tanh layer: saturated
units (Balduzzi et al. 2017, Figs. 3–4). For float inputs: the input gradient's lag-1
autocorrelation along segments between pairs of inputs and its relative effective rank over the
batch (Balduzzi et al. 2017, Figs. 1, 2, 5). Then a verdict per pathology
(gradprobe.diagnosis.verdicts). The sections are registered in gradprobe.diagnosis.sections.

One forward and one backward of the batch loss give everything per layer: per-sample gradients
follow from each unit's saved input and output gradient (gradprobe.probes.per_sample). Train-mode
modules are put in eval mode while probing (every dropout off) and train-mode batch norm is frozen
at the batch's statistics, so that samples are independent (gradprobe.probes.state); modes,
buffers, `.grad`s and the RNG states are restored afterwards, and a GradientMonitor attached to
the model ignores the probe.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradprobe.diagnosis import text
from gradprobe.diagnosis.sections import SECTIONS, Context
from gradprobe.diagnosis.verdicts import Finding, Thresholds, ordered
from gradprobe.probes.capture import capture
from gradprobe.probes.hooks import suspended
from gradprobe.probes.inputs import batch_size
from gradprobe.probes.state import preserved, sample_independent
from gradprobe.probes.units import sample_units, uncovered


@dataclass(frozen=True)
class ProbeReport:
    """What `probe` measured; every field is JSON-able (floats, lists, dicts).

    layers: one dict per unit call: name, kind, weight_norm, grad_norm (‖mean per-sample
        gradient‖ of the unit's parameters), speed (mean_i ‖∂ℓ_i/∂z‖), bound (mean product bound
        on the speed, or None), bound_holds, snr / snr_se (single-sample), batch_snr (B·snr),
        signal, noise, below_noise, params (parameter names), affine (has a ≥ 2-D parameter),
        samples (how many samples the SNR is over).
    activity: per ReLU-like layer: name, activation, coactivation, dead_fraction,
        always_on_fraction. saturation: per sigmoid/tanh layer: name, saturated_fraction.
    shattering: lag1 (mean over segments), lag1_per_segment, relative_rank, points, trace and
        acf of the first segment; or {"reason": ...} when not measurable.
    findings: one per verdict kind. notes: what was changed or left out while probing.
    coverage: parameters (trainable count), measured (count with per-sample statistics),
        unmeasured ({name: reason}). extra: sections registered beyond these.
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
    coverage: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

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
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        return text.report(d, SECTIONS)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path) -> Path:
        """Draw the report's one figure (a panel per registered panel) to a PNG."""
        from gradprobe.diagnosis.figure import plot_report
        return plot_report(self.to_dict(), Path(path),
                           [p for s in SECTIONS for p in s.panels])


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
    reduction: str = "mean",
    batch_dim: int = 0,
) -> ProbeReport:
    """Probe `model` on one batch = (inputs, targets) with `loss_fn(output, targets)`.

    inputs: a tensor (or tuple) passed as model(inputs), or a dict of tensors passed as
    model(**inputs) (e.g. input_ids, attention_mask). loss_fn receives the model's output as it
    returns it (a tensor, tuple, dict or Hugging Face ModelOutput) and the targets, and returns
    the batch loss reduced over samples by `reduction` ('mean' or 'sum'), or one loss per sample.
    max_samples: how many samples get per-sample gradients (SNR, bound); max_floats caps the
    per-sample gradients (samples × parameters, 200 MB in float32); fewer samples are used when
    it would be exceeded (said in `notes`). segments × points: inputs along segments between
    pairs of batch inputs for the shattering measure. seed: the random output direction whose
    input gradient is taken, and the Gaussian reference of the effective rank. batch_dim: where
    the samples sit (1 for sequence-first layouts). chunk_size: kept for compatibility (unused).
    """
    del chunk_size
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    x, y = batch
    thresholds = thresholds or Thresholds()
    g = torch.Generator(device="cpu").manual_seed(seed)
    B = batch_size(x, batch_dim)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    m_ps = min(B, max_samples, max(2, max_floats // max(1, n_params)))
    units = sample_units(model)
    names = {id(p): k for k, p in model.named_parameters()}
    results: dict[str, Any] = {}
    with preserved(model), suspended():
        notes = sample_independent(model, x)
        if m_ps < min(B, max_samples):
            notes.append(f"per-sample gradients on {m_ps} samples only: {n_params} parameters "
                         f"× more samples would exceed max_floats={max_floats:g}")
        cap = capture(model, units, loss_fn, x, y, reduction)
        ctx = Context(model, x, y, cap, B, m_ps, reduction, batch_dim, segments,
                      points, g, names, notes)
        findings: list[Finding] = []
        for s in SECTIONS:
            results[s.key] = s.measure(ctx)
            if s.judge is not None:
                findings += s.judge(results[s.key], thresholds, ctx)
    missing = uncovered(model, units, {c.name for c in cap.calls})
    rows = results.get("layers", [])
    measured = {p for d in rows if d.get("snr") is not None for p in d["params"]}
    why = {p: d["reason"] for d in rows if "reason" in d for p in d["params"]}
    trainable = [k for k, p in model.named_parameters() if p.requires_grad]
    for k in trainable:
        if k not in missing and k not in measured:
            missing[k] = why.get(k, "no finite per-sample statistics") + "; batch gradient only"
    if missing:
        notes.append(f"not measured per sample: {len(missing)} of {len(trainable)} parameter "
                     "tensors: " + "; ".join(f"{k} ({why})" for k, why in list(missing.items())[:8])
                     + (" ..." if len(missing) > 8 else ""))
    own = {f.name for f in fields(ProbeReport)}
    return ProbeReport(
        model=type(model).__name__, batch_size=B, samples=m_ps, loss=cap.loss,
        layers=results.get("layers", []), activity=results.get("activity", []),
        saturation=results.get("saturation", []), shattering=results.get("shattering", {}),
        findings=ordered(findings), thresholds=asdict(thresholds), notes=notes,
        coverage={"parameters": len(trainable), "measured": len(trainable) - len(missing),
                  "unmeasured": missing},
        extra={k: v for k, v in results.items() if k not in own})
