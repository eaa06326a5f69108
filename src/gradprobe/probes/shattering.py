"""Shattered gradients: input gradients along a path, their autocorrelation and effective rank.

Balduzzi et al. 2017, "The Shattered Gradients Problem", §1–§3 (Figs. 1, 2, 5). The gradient
of a shallow net with respect to its input varies like brown noise along a line of inputs; that of
a deep feed-forward net like white noise ("shattered"); resnets sit in between.

Works on any `nn.Module`. Samples must be independent in the forward pass (eval mode, or
normalisation statistics computed over the batch and then frozen): then one backward of the summed
per-sample scalar gives every per-sample input gradient at once (SPEC C1, C4). A module in
train-mode batch norm couples the samples, and the "per-sample" gradient then also carries the
derivative through the batch statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def _sum_per_sample(out: Tensor) -> Tensor:
    """Default output_fn: sum over the non-batch dims, (n, ...) → (n,)."""
    return out.reshape(out.shape[0], -1).sum(dim=1)


def input_gradients(
    model: nn.Module | Callable[[Tensor], Tensor],
    inputs: Tensor,
    output_fn: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Per-sample d output_fn(model(x))_i / d x_i for each row x_i of `inputs`.

    inputs: (n, ...) any shape with the batch first. output_fn maps the model's output (n, ...)
    to per-sample scalars (n,); default: sum over the non-batch dims. Returns a tensor of
    `inputs.shape`, detached. One backward of the summed scalar: exact when samples do not
    interact in the forward pass (eval mode / frozen statistics).
    """
    fn = output_fn if output_fn is not None else _sum_per_sample
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        scal = fn(model(x))
        if scal.shape != (x.shape[0],):
            raise ValueError(
                f"output_fn must return one scalar per sample, shape ({x.shape[0]},); "
                f"got {tuple(scal.shape)}"
            )
        (g,) = torch.autograd.grad(scal.sum(), x)
    return g.detach()


def grid(lo: float = -2.0, hi: float = 2.0, n: int = 256, **kw) -> Tensor:
    """n equally spaced scalar inputs in [lo, hi], shape (n, 1) (SPEC C1's 1-D grid)."""
    return torch.linspace(lo, hi, n, **kw).unsqueeze(1)


def segment(a: Tensor, b: Tensor, n: int) -> Tensor:
    """n inputs evenly spaced on the segment from a to b (any shape S), shape (n, *S)."""
    if a.shape != b.shape:
        raise ValueError(f"segment ends differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    t = torch.linspace(0.0, 1.0, n, dtype=a.dtype, device=a.device)
    t = t.reshape((n,) + (1,) * a.dim())
    return a.unsqueeze(0) + t * (b - a).unsqueeze(0)


def autocorrelation(g: Tensor, max_lag: int | None = None) -> Tensor:
    """Autocorrelation over the last dim (SPEC C1): g (..., M) → (..., max_lag + 1).

    ACF(k) = Σ_{i ≤ M−k} (g_i − ḡ)(g_{i+k} − ḡ) / Σ_i (g_i − ḡ)², so ACF(0) = 1. This is the
    usual biased estimator (the sum is not rescaled by M/(M−k)). Computed by FFT in float64.
    A constant trace (zero variance) gives NaN.
    """
    m = g.shape[-1]
    max_lag = m - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < m:
        raise ValueError(f"max_lag must be in [0, {m - 1}], got {max_lag}")
    x = g.to(torch.float64)
    x = x - x.mean(dim=-1, keepdim=True)
    n_fft = 1 << (2 * m - 1).bit_length()
    f = torch.fft.rfft(x, n=n_fft, dim=-1)
    acov = torch.fft.irfft(f * f.conj(), n=n_fft, dim=-1)[..., : max_lag + 1]
    return (acov / acov[..., :1]).to(g.dtype if g.is_floating_point() else torch.float64)


def covariance_image(g: Tensor) -> Tensor:
    """|(g − ḡ)(g − ḡ)ᵀ| / σ²_g for a trace g (M,) → (M, M) (Balduzzi et al. Fig. 1, bottom)."""
    if g.dim() != 1:
        raise ValueError(f"covariance_image expects a 1-D trace, got shape {tuple(g.shape)}")
    c = g - g.mean()
    return (torch.outer(c, c) / c.pow(2).mean()).abs()


def effective_rank(G: Tensor) -> float:
    """r(G) = ‖G‖_F² / σ_max(G)² for a matrix G (≥ 2-D: trailing dims flattened into columns).

    1 for a rank-1 matrix, n for an n×n orthogonal one (Balduzzi et al. §2, Fig. 5).
    """
    if G.dim() < 2:
        raise ValueError("effective_rank needs a matrix")
    G = G.reshape(G.shape[0], -1).to(torch.float64)
    smax = torch.linalg.matrix_norm(G, ord=2)
    return float(G.pow(2).sum() / smax.pow(2))


def relative_effective_rank(
    G: Tensor, generator: torch.Generator | None = None, draws: int = 4
) -> float:
    """r(G) / r(Z), Z of the same shape with i.i.d. N(0, 1) entries (mean r over `draws` Z's).

    For Γ whose columns are per-sample gradients, white-noise gradients give ≈ 1 and gradients
    sharing one direction give ≈ 1/r(Z) (SPEC C4).
    """
    G2 = G.reshape(G.shape[0], -1)
    rz = [
        effective_rank(torch.randn(G2.shape, generator=generator, dtype=torch.float64,
                                   device=G2.device if generator is None else generator.device))
        for _ in range(draws)
    ]
    return effective_rank(G2) / (sum(rz) / len(rz))


@dataclass(frozen=True)
class Shattering:
    """Input gradients along a path of n inputs and their statistics.

    gradients: (n, *input_shape), per-sample input gradients along the path.
    trace: (n,), the gradient projected on the path direction (for a 1-D grid: df/dx).
    acf: (max_lag + 1,), autocorrelation of `trace`; lag1 = acf[1].
    relative_rank: r(Γ)/r(Z) with Γ = gradients as rows (n × input size).
    """

    gradients: Tensor
    trace: Tensor
    acf: Tensor
    lag1: float
    relative_rank: float


def shattering(
    model: nn.Module | Callable[[Tensor], Tensor],
    path: Tensor,
    output_fn: Callable[[Tensor], Tensor] | None = None,
    max_lag: int | None = None,
    generator: torch.Generator | None = None,
) -> Shattering:
    """Input gradients along `path` (n, ...) and their ACF / effective rank in one call."""
    g = input_gradients(model, path, output_fn)
    flat = g.reshape(g.shape[0], -1)
    if flat.shape[1] == 1:
        trace = flat[:, 0]
    else:  # directional derivative along the path (its chord direction)
        d = (path[-1] - path[0]).reshape(-1).to(flat.dtype)
        trace = flat @ (d / d.norm().clamp_min(1e-30))
    n = trace.shape[0]
    acf = autocorrelation(trace, min(n - 1, max_lag if max_lag is not None else n - 1))
    return Shattering(
        gradients=g, trace=trace, acf=acf, lag1=float(acf[1]) if n > 1 else float("nan"),
        relative_rank=relative_effective_rank(flat, generator),
    )


def chord_traces(model: nn.Module, x: Tensor, segments: int, points: int,
                 project: Callable[[Tensor], Tensor]) -> Tensor:
    """Directional derivatives of project(model(·)) along the chords x[2j] → x[2j+1]
    (j < segments), `points` inputs each: (segments, points), float64."""
    k = segments
    paths = torch.cat([segment(x[2 * j], x[2 * j + 1], points) for j in range(k)])
    grads = input_gradients(model, paths, project).reshape(k, points, -1).double()
    chords = torch.stack([(x[2 * j + 1] - x[2 * j]).reshape(-1) for j in range(k)]).double()
    chords = chords / chords.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return torch.einsum("kpd,kd->kp", grads, chords)


def lag1_of_traces(traces: Tensor, rel_tol: float = 1e-4) -> tuple[Tensor, Tensor]:
    """Lag-1 ACF per trace (k,), and which traces are constant (k,) bool.

    A net exactly linear along a segment (looks-linear or a gated residual net at init) has a
    constant directional derivative there: its ACF is 0/0, rounding noise. Nothing is shattered,
    so such a trace (std ≤ rel_tol·rms) counts as lag-1 = 1.
    """
    rms = traces.pow(2).mean(1).sqrt()
    const = traces.std(1) <= rel_tol * rms.clamp_min(1e-300)
    acf = autocorrelation(traces, 1)[:, 1]
    return torch.where(const, torch.ones_like(acf), acf), const


def segment_shattering(model: nn.Module, x: Tensor, segments: int = 4, points: int = 64,
                       g: torch.Generator | None = None) -> dict:
    """The probe report's shattering measure on a batch x (n, ...) of float inputs.

    The model's output is projected on a fixed random direction (seeded by g); its input gradient
    is taken along `segments` segments between pairs of batch inputs (`points` each), reduced to
    the directional derivative along each chord, and its autocorrelation computed; plus the
    relative effective rank of the input gradients over the batch. Returns lag1 (mean over
    segments), lag1_per_segment, points, relative_rank, trace and acf of the first segment; or
    {"reason": ...} when not measurable.
    """
    g = g if g is not None else torch.Generator().manual_seed(0)
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
    traces = chord_traces(model, x, k, points, project)  # (k, points)
    gb = input_gradients(model, x[: min(n, 256)], project)
    if not (torch.isfinite(traces).all() and torch.isfinite(gb).all()):
        return {"reason": "the input gradients are not finite"}
    lag, const = lag1_of_traces(traces)
    acf = autocorrelation(traces, min(points - 1, 20))
    lag1 = [float(a) for a in lag]
    return {
        "lag1": float(sum(v for v in lag1 if math.isfinite(v)) / max(1, len(lag1))),
        "lag1_per_segment": lag1, "points": points, "constant_segments": int(const.sum()),
        "relative_rank": relative_effective_rank(gb, g), "trace": traces[0].tolist(),
        "acf": acf[0].tolist(),
    }
