"""The probe report's sections: adding a measurement to `gp.probe` is one entry in SECTIONS.

A Section names its key in the report (and in probe.json), how to measure it from a Context
(the captured pass plus the batch), how to print it, which verdicts it gives, and which figure
panels it draws. `probe` runs the sections in order; a key that is not a ProbeReport field goes
into `report.extra`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gradprobe.diagnosis import text
from gradprobe.diagnosis.layers import layer_rows
from gradprobe.diagnosis.verdicts import (
    Finding,
    Thresholds,
    judge_activity,
    judge_layers,
    judge_saturation,
    judge_shattering,
)
from gradprobe.probes.activity import activity, is_relu_like
from gradprobe.probes.capture import Captured
from gradprobe.probes.saturation import saturation
from gradprobe.probes.shattering import segment_shattering


@dataclass
class Context:
    """What a section may use: the model (in its probing state), loss, batch, the captured pass,
    sizes and options; notes to append to; finite / nonfinite set by the layers section."""

    model: nn.Module
    x: Any
    y: Any
    captured: Captured
    batch_size: int
    samples: int
    reduction: str
    batch_dim: int
    segments: int
    points: int
    generator: torch.Generator
    names: dict[int, str]
    notes: list[str]
    finite: bool = True
    nonfinite: str | None = None


@dataclass(frozen=True)
class Section:
    """One measurement of the report (see the module docstring)."""

    key: str
    measure: Callable[[Context], Any]
    render: Callable[[Any], list[str]]
    judge: Callable[[Any, Thresholds, Context], list[Finding]] | None = None
    panels: tuple[str, ...] = field(default_factory=tuple)  # gradprobe.diagnosis.figure names


def _layers(ctx: Context) -> list[dict]:
    rows, ctx.finite, ctx.nonfinite = layer_rows(
        ctx.captured, ctx.batch_size, ctx.samples, ctx.reduction, ctx.batch_dim,
        ctx.names, ctx.notes, ctx.model)
    return rows


def _activity(ctx: Context) -> list[dict]:
    if not any(is_relu_like(m) for m in ctx.model.modules()):
        return []
    st = activity(ctx.model, ctx.x)
    return [{"name": nm, "activation": float(st.activation[j]),
             "coactivation": float(st.coactivation[j]),
             "dead_fraction": float((st.unit_activation[j] == 0).float().mean()),
             "always_on_fraction": float((st.unit_activation[j] == 1).float().mean())}
            for j, nm in enumerate(st.names)]


def _shattering(ctx: Context) -> dict:
    if ctx.batch_dim != 0:
        return {"reason": "inputs are not batch-first"}
    return segment_shattering(ctx.model, ctx.x, ctx.segments, ctx.points, ctx.generator)


SECTIONS: list[Section] = [
    Section("layers", _layers, text.layers,
            lambda v, t, ctx: judge_layers(v, ctx.finite, t, ctx.nonfinite),
            ("speed", "snr")),
    Section("activity", _activity, text.activity, lambda v, t, ctx: judge_activity(v, t),
            ("activity",)),
    Section("saturation", lambda ctx: saturation(ctx.model, ctx.x), text.saturation,
            lambda v, t, ctx: judge_saturation(v, t)),
    Section("shattering", _shattering, text.shattering,
            lambda v, t, ctx: judge_shattering(v, t), ("shattering",)),
]
