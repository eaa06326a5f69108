"""Correlation of gradients between inputs (Balduzzi et al. 2017, §3, Definition 1).

For the gradient r_i = Σ_p ∂f_p/∂n at input x^(i) of a neuron n, C(i, j) = E_W[r_i r_j] and
R = C(i, j)/sqrt(C(i) C(j)). Given r for K independent nets, B inputs per net and N exchangeable
neurons (e.g. the N input coordinates), E_W is the mean over nets and neurons and R pools all
distinct pairs of inputs: R̂ = mean_{i≠j} Σ_n r_i r_j / mean_i Σ_n r_i². The error bars are
jackknifes over nets (the independent replicates).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def pair_moments(G: Tensor) -> tuple[Tensor, Tensor]:
    """G (K nets, B inputs, N neurons) → per net (num, den), each (K,) float64:
    num = mean over distinct input pairs of Σ_n r_i r_j, den = mean over inputs of Σ_n r_i²."""
    K, B, _ = G.shape
    if B < 2:
        raise ValueError(f"need ≥ 2 inputs per net for pairs, got {B}")
    G = G.to(torch.float64)
    s = G.sum(1)
    diag = (G * G).sum((1, 2))  # Σ_i Σ_n r_i²     per net
    off = (s * s).sum(1) - diag  # Σ_{i≠j} Σ_n r_i r_j
    return off / (B * (B - 1)), diag / B


def ratio_jackknife(num: Tensor, den: Tensor,
                    fn: Callable[[float], float] = float) -> tuple[float, float]:
    """fn(Σ num / Σ den) over K nets and its leave-one-out jackknife standard error
    (e.g. fn = log2 for log2 R). A non-finite leave-one-out value makes the s.e. NaN."""
    K = num.shape[0]
    tn, td = num.sum(), den.sum()
    full = _apply(fn, float(tn / td))
    if K < 2:
        return full, math.nan
    loo = torch.tensor([_apply(fn, float((tn - num[k]) / (td - den[k]))) for k in range(K)],
                       dtype=torch.float64)
    return full, float(math.sqrt((K - 1) / K * float(((loo - loo.mean()) ** 2).sum())))


def _apply(fn: Callable[[float], float], x: float) -> float:
    try:
        return float(fn(x))
    except (ValueError, ZeroDivisionError):  # e.g. log2 of a non-positive ratio
        return math.nan


def correlation_stats(G: Tensor) -> dict:
    """G (K nets, B inputs, N neurons) of r values → pooled R with its jackknife s.e. over nets,
    C(i) = mean r², and per net R, C, num and den (for other statistics across nets)."""
    num, den = pair_moments(G)
    N = G.shape[2]
    R, se = ratio_jackknife(num, den)
    return {"R": R, "R_se": se, "C": float(den.mean() / N), "R_per_net": (num / den).tolist(),
            "C_per_net": (den / N).tolist()}
