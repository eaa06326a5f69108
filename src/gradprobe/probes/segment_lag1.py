"""Lag-1 autocorrelation of input gradients along segments between pairs of inputs.

The shattering measure of `gp.probe` (Balduzzi et al. 2017, Fig. 2), for nets that may be exactly
linear along a segment: the directional derivative of a fixed random projection of the output
is then constant (up to rounding) and its ACF is 0/0. Such a trace has nothing shattered, so its
lag-1 is reported as 1 and counted in `constant`, instead of an ACF of rounding noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradprobe.probes.shattering import chord_traces, lag1_of_traces


@dataclass(frozen=True)
class SegmentLag1:
    """lag1: mean over segments; per_segment: (segments,); constant: how many segments had a
    constant trace (std ≤ rel_tol · rms, reported as 1)."""

    lag1: float
    per_segment: list[float]
    constant: int


def segment_lag1(model: nn.Module, x: Tensor, segments: int, points: int,
                 generator: torch.Generator, rel_tol: float = 1e-4) -> SegmentLag1:
    """Segments x[2j] → x[2j+1] (j < segments) of `points` inputs; the output is projected on
    one random unit direction (seeded by `generator`) and differentiated along each chord."""
    k = min(segments, x.shape[0] // 2)
    if k < 1 or points < 3:
        raise ValueError("needs ≥ 2 inputs and ≥ 3 points per segment")
    with torch.no_grad():
        n_out = model(x[:1]).reshape(1, -1).shape[1]
    r = torch.randn(n_out, generator=generator, dtype=torch.float64).to(x.dtype).to(x.device)
    r = r / r.norm()
    traces = chord_traces(model, x, k, points, lambda o: o.reshape(o.shape[0], -1) @ r)
    lag, const = lag1_of_traces(traces, rel_tol)
    return SegmentLag1(lag1=float(lag.mean()), per_segment=[float(v) for v in lag],
                       constant=int(const.sum()))
