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

from gradprobe.probes.per_sample import flatten_grads, per_sample_grads


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
    gram = C.T @ C if C.shape[1] <= n else C @ C.T  # tr(S²) from the smaller Gram matrix
    return _result(n, sq, float(mean @ mean), float((gram * gram).sum()), C @ mean)


def snr_from_gram(K: Tensor) -> SNRResult:
    """The same as `snr_from_samples(G)` from the (n, n) Gram matrix K = G Gᵀ of the per-sample
    gradients alone (cheap when p ≫ n and K has a closed form, as for a Linear layer's
    K = (g gᵀ)∘(x xᵀ)); computed in float64."""
    if K.dim() != 2 or K.shape[0] != K.shape[1] or K.shape[0] < 2:
        raise ValueError(f"K must be (n, n) with n ≥ 2, got shape {tuple(K.shape)}")
    K = K.detach().to(torch.float64)
    n = K.shape[0]
    row = K.mean(1, keepdim=True)
    Kc = K - row - row.T + K.mean()  # H K H: the centred Gram matrix
    return _result(n, Kc.diagonal(), float(K.mean()), float((Kc * Kc).sum()),
                   (row.squeeze(1) - K.mean()))


def _result(n: int, sq: Tensor, mean_sq: float, gram_sq: float, proj: Tensor) -> SNRResult:
    """SNRResult from ‖g_i − ḡ‖² (n,), ‖ḡ‖², ‖CᵀC‖²_F and (g_i − ḡ)ᵀḡ (n,)."""
    noise = float(sq.sum() / (n - 1))
    noise_se = float(sq.std() / math.sqrt(n)) if n > 2 else math.inf
    signal = mean_sq - noise / n
    # Hoeffding: Var U = 4(n−2)/(n(n−1)) ζ1 + 2/(n(n−1)) ζ2, ζ1 = μᵀΣμ, ζ2 = tr Σ² + 2 μᵀΣμ.
    # Moments estimated without their leading bias (Wishart moments; exact for Gaussian ĝ):
    # E tr S² = tr Σ² · n/(n−1) + (tr Σ)²/(n−1), and E ḡᵀSḡ = μᵀΣμ + tr Σ²/n.
    tr_s2 = gram_sq / (n - 1) ** 2
    tr_sigma2 = max((tr_s2 - noise**2 / (n - 1)) * (n - 1) / n, 0.0)
    zeta1 = max(float((proj * proj).sum() / (n - 1)) - tr_sigma2 / n, 0.0)
    var = 4 * (n - 2) / (n * (n - 1)) * zeta1 + 2 / (n * (n - 1)) * (tr_sigma2 + 2 * zeta1)
    signal_se = math.sqrt(max(var, 0.0))
    snr = signal / noise if noise > 0 else (math.inf if signal > 0 else math.nan)
    return SNRResult(signal, signal_se, noise, noise_se, snr, n, bool(signal < 2 * signal_se))


__all__ = ["SNRResult", "flatten_grads", "gradient_snr", "per_sample_grads", "snr_from_gram",
           "snr_from_samples"]


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
