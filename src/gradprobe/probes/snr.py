"""Gradient signal-to-noise ratio from per-sample gradients (Shalev-Shwartz et al. 2017, §3.2).

For the single-sample gradient ĝ of a loss with respect to a chosen set of parameters,
    signal = ‖E ĝ‖²            noise = E‖ĝ − E ĝ‖² = tr Cov(ĝ)            SNR = signal / noise.
From n samples g_1..g_n (ḡ their mean, S their unbiased covariance):
    noise  = tr S                                 (unbiased)
    signal = ‖ḡ‖² − tr S / n = (1/(n(n−1))) Σ_{i≠j} g_iᵀg_j   (unbiased U-statistic)
The plug-in ‖ḡ‖² would be biased upwards by tr(Cov)/n, so a gradient with no signal at all would
still show SNR ≈ 1/n. The unbiased estimate can be negative; its standard error (Hoeffding's
U-statistic variance, 4(n−2)/(n(n−1))·μᵀΣμ + 2/(n(n−1))·(tr Σ² + 2μᵀΣμ), its moments estimated
without their leading bias)
says whether the signal is distinguishable from zero: `below_noise` is signal < 2·signal_se.

`per_sample_grads` works on any nn.Module through torch.func (functional_call + vmap + grad) and
differentiates only the parameters asked for; the others are held fixed (so, e.g., asking for
the last layer of a conv net does not backpropagate into the convolutions). The model must not
use batch statistics (put BatchNorm in eval mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_map


@dataclass(frozen=True)
class SNRResult:
    """Signal and noise of the single-sample gradient over n samples (all sums over coordinates).

    signal: unbiased estimate of ‖E ĝ‖² (‖ḡ‖² − tr(Cov)/n); may be negative when there is none.
    signal_se: its standard error.   noise: E‖ĝ − E ĝ‖² = tr(Cov), unbiased.   noise_se: its SE.
    snr: signal / noise.   n: samples.   below_noise: signal < 2·signal_se (not resolved from 0).
    """

    signal: float
    signal_se: float
    noise: float
    noise_se: float
    snr: float
    n: int
    below_noise: bool

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def snr_from_samples(G: Tensor) -> SNRResult:
    """Signal, noise and their standard errors from per-sample gradients G: (n, p), n ≥ 2."""
    if G.dim() != 2 or G.shape[0] < 2:
        raise ValueError(f"G must be (n, p) with n ≥ 2 samples, got shape {tuple(G.shape)}")
    G = G.detach().to(torch.float64)
    n = G.shape[0]
    mean = G.mean(0)  # (p,)
    C = G - mean  # (n, p) centred
    sq = (C * C).sum(1)  # (n,) ‖g_i − ḡ‖²
    noise = float(sq.sum() / (n - 1))
    noise_se = float(sq.std() / math.sqrt(n)) if n > 2 else math.inf
    signal = float(mean @ mean) - noise / n
    # Hoeffding: Var U = 4(n−2)/(n(n−1)) ζ1 + 2/(n(n−1)) ζ2, ζ1 = μᵀΣμ, ζ2 = tr Σ² + 2 μᵀΣμ.
    # Moments estimated without their leading bias (Wishart moments; exact for Gaussian ĝ):
    # E tr S² = tr Σ² · n/(n−1) + (tr Σ)²/(n−1), and E ḡᵀSḡ = μᵀΣμ + tr Σ²/n.
    gram = C.T @ C if C.shape[1] <= n else C @ C.T  # tr(S²) from the smaller Gram matrix
    tr_s2 = float((gram * gram).sum()) / (n - 1) ** 2
    tr_sigma2 = max((tr_s2 - noise**2 / (n - 1)) * (n - 1) / n, 0.0)
    proj = C @ mean  # (n,)
    zeta1 = max(float((proj * proj).sum() / (n - 1)) - tr_sigma2 / n, 0.0)
    var = 4 * (n - 2) / (n * (n - 1)) * zeta1 + 2 / (n * (n - 1)) * (tr_sigma2 + 2 * zeta1)
    signal_se = math.sqrt(max(var, 0.0))
    snr = signal / noise if noise > 0 else (math.inf if signal > 0 else math.nan)
    return SNRResult(signal, signal_se, noise, noise_se, snr, n, bool(signal < 2 * signal_se))


def per_sample_grads(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    inputs: Any,
    targets: Any,
    params: Sequence[str] | None = None,
    chunk_size: int | None = None,
) -> dict[str, Tensor]:
    """Gradient of loss_fn(model(x_i[None]), t_i[None]) for each sample i: name → (n, *shape).

    inputs / targets: tensors (or tuples of tensors) with the sample index first.
    params: parameter names to differentiate (default: all that require grad); the rest are
    held fixed. chunk_size: samples per vmapped chunk, to bound memory.
    """
    named = dict(model.named_parameters())
    chosen = list(params) if params is not None else [k for k, p in named.items()
                                                      if p.requires_grad]
    unknown = [k for k in chosen if k not in named]
    if unknown:
        raise ValueError(f"unknown parameter names {unknown}; the model has {list(named)}")
    fixed = {k: p.detach() for k, p in named.items() if k not in chosen}
    buffers = dict(model.named_buffers())
    train = {k: named[k].detach() for k in chosen}

    def sample_loss(theta: dict[str, Tensor], x: Any, t: Any) -> Tensor:
        x1 = tree_map(lambda a: a.unsqueeze(0), x)
        t1 = tree_map(lambda a: a.unsqueeze(0), t)
        out = functional_call(model, ({**fixed, **theta}, buffers), (x1,))
        return loss_fn(out, t1)

    return vmap(grad(sample_loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(
        train, inputs, targets)


def flatten_grads(grads: dict[str, Tensor]) -> Tensor:
    """name → (n, *shape) to one (n, p) matrix (in the dict's order)."""
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)


def gradient_snr(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    batch: tuple[Any, Any],
    params: Sequence[str] | None = None,
    chunk_size: int | None = None,
) -> SNRResult:
    """SNR of the single-sample gradient over `batch` = (inputs, targets), for `params`."""
    inputs, targets = batch
    grads = per_sample_grads(model, loss_fn, inputs, targets, params, chunk_size)
    return snr_from_samples(flatten_grads(grads))
