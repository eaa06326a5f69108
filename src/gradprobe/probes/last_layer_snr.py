"""Streaming gradient SNR of a last linear layer from closed-form per-sample gradients.

For a linear layer s = w·h + b read at k places of one sample (e.g. N1's score layer applied to
the k images of a tuple), the single-sample gradient is

    g_i = Σ_j δ_ij · [h_ij, 1]        δ_ij = ∂ℓ_i/∂s_ij,  h_ij the layer's input features,

so it needs only the output gradients δ (one autograd pass over a chunk: the per-sample losses
are independent, so ∂(Σ_i ℓ_i)/∂s_i is sample i's own δ) and the features. `GradMoments`
accumulates, chunk by chunk, n, Σ g, Σ ‖g‖², Σ g gᵀ (p × p), Σ ‖g‖⁴ and Σ ‖g‖² g in float64 (g gᵀ
summed in float32 within a chunk, as only the standard errors use it): no
per-sample tensor beyond one chunk, no vmap. From those sums it returns exactly the estimates of
`gradprobe.probes.snr.snr_from_samples` (unbiased signal ‖ḡ‖² − tr S/n, noise tr S, their
standard errors; tested equal), so 10⁶–10⁷ samples cost a few seconds.

`authors_noise` is the noise formula of the authors' released code, `Noise = S2 − S**2` with
S = ‖ḡ‖² (already a squared norm) and S2 = mean ‖g_i‖²: it squares a squared norm, so it equals
the second moment E‖ĝ‖² = noise + signal up to a term of order signal², i.e. it exceeds the
unbiased noise tr Cov by ≈ ‖E ĝ‖² (a relative excess ≈ SNR). Their signal is the plug-in
S = ‖ḡ‖², biased upwards by tr Cov/n.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from gradprobe.probes.snr import SNRResult


def last_layer_grads(delta: Tensor, h: Tensor, bias: bool = True) -> Tensor:
    """Per-sample gradients of a linear layer read k times per sample.

    delta (c, k) output gradients, h (c, k, f) its inputs → (c, f [+ 1]) = Σ_j δ_j [h_j, 1].
    """
    g = torch.einsum("ck,ckf->cf", delta, h)
    return torch.cat([g, delta.sum(1, keepdim=True)], dim=1) if bias else g


class GradMoments:
    """Running sums of per-sample gradients g ∈ R^p (float64), fed in chunks (c, p)."""

    def __init__(self, p: int) -> None:
        self.n = 0
        self.sum_g = torch.zeros(p, dtype=torch.float64)
        self.sum_sq = 0.0  # Σ ‖g‖²
        self.sum_ggt = torch.zeros(p, p, dtype=torch.float64)
        self.sum_sq2 = 0.0  # Σ ‖g‖⁴
        self.sum_sq_g = torch.zeros(p, dtype=torch.float64)  # Σ ‖g‖² g

    def add(self, g: Tensor) -> None:
        """Add a chunk of per-sample gradients g (c, p)."""
        g32 = g.detach().to(device="cpu", dtype=torch.float32)
        g = g32.double()
        sq = (g * g).sum(1)  # (c,)
        self.n += g.shape[0]
        self.sum_g += g.sum(0)
        self.sum_sq += float(sq.sum())
        self.sum_ggt += (g32.T @ g32).double()  # float32 within a chunk: only the SEs use it
        self.sum_sq2 += float((sq * sq).sum())
        self.sum_sq_g += sq @ g

    def result(self) -> SNRResult:
        """Signal, noise and their standard errors (the formulas of snr_from_samples)."""
        n = self.n
        if n < 3:
            raise ValueError(f"need at least 3 samples, got {n}")
        m = self.sum_g / n
        mm = float(m @ m)
        S = (self.sum_ggt - n * torch.outer(m, m)) / (n - 1)  # covariance
        sum_sq = self.sum_sq
        noise = (sum_sq - n * mm) / (n - 1)  # tr S, from float64 sums
        # Σ ‖g_i − ḡ‖⁴, expanded in the running sums
        sum_c4 = (self.sum_sq2 - 4 * float(m @ self.sum_sq_g) + 4 * float(m @ self.sum_ggt @ m)
                  + 2 * mm * sum_sq - 4 * mm * float(m @ self.sum_g) + n * mm * mm)
        sum_c2 = noise * (n - 1)
        var_sq = max((sum_c4 - sum_c2**2 / n) / (n - 1), 0.0)
        noise_se = math.sqrt(var_sq) / math.sqrt(n)
        signal = mm - noise / n
        tr_s2 = float((S * S).sum())
        tr_sigma2 = max((tr_s2 - noise**2 / (n - 1)) * (n - 1) / n, 0.0)
        zeta1 = max(float(m @ S @ m) - tr_sigma2 / n, 0.0)
        var = 4 * (n - 2) / (n * (n - 1)) * zeta1 + 2 / (n * (n - 1)) * (tr_sigma2 + 2 * zeta1)
        signal_se = math.sqrt(max(var, 0.0))
        snr = signal / noise if noise > 0 else (math.inf if signal > 0 else math.nan)
        return SNRResult(signal, signal_se, noise, noise_se, snr, n, bool(signal < 2 * signal_se))

    def authors(self) -> dict[str, float]:
        """The authors' code: S = ‖ḡ‖², S2 = mean ‖g‖², Noise = S2 − S**2, SNR = S / Noise."""
        n = self.n
        s = float((self.sum_g / n) @ (self.sum_g / n))
        s2 = self.sum_sq / n
        noise = s2 - s**2
        return {"signal": s, "noise": noise, "snr": s / noise if noise else math.nan}


def stream_snr(chunks: Iterable[tuple[Tensor, Tensor]], p: int,
               bias: bool = True) -> tuple[SNRResult, dict[str, float]]:
    """SNR of a last layer over chunks of (δ (c, k), h (c, k, f)); p = f + bias.

    Returns the unbiased estimate and the authors' formula (see the module docstring).
    """
    acc = GradMoments(p)
    for delta, h in chunks:
        acc.add(last_layer_grads(delta, h, bias))
    return acc.result(), acc.authors()
