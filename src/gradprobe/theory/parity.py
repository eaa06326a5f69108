"""Closed forms for the parity family (Shalev-Shwartz, Shamir & Shammah 2017, §2.2).

Theorem 1: for pairwise-orthogonal targets with E h² ≤ 1, E_x‖∂p_w(x)/∂w‖² ≤ G(w)² and the square
loss or a 1-Lipschitz classification loss r(ŷ·y), Var(H, F, w) ≤ G(w)² / |H|; for the 2^d
parities on {0,1}^d, Var ≤ G(w)² / 2^d.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def theorem1_bound(g2: float, n_targets: int) -> float:
    """Shalev-Shwartz et al. 2017, Thm 1: Var(H, F, w) ≤ G(w)² / |H|."""
    return g2 / n_targets


def parity_bound(g2: float, d: int) -> float:
    """Thm 1 for the 2^d parities of {0,1}^d: G(w)² / 2^d."""
    return g2 / 2.0**d


def parity_variance_closed_form(loss: str, pred: Tensor, jac_norm2: Tensor) -> float:
    """Var(H, F, w) over all 2^d parities, by Parseval (hinge or square loss).

    pred (N,) = p_w(x), jac_norm2 (N,) = ‖∂p_w(x)/∂w‖², over all N = 2^d inputs, with x = 0 (where
    every parity is +1) at index 0, as tasks.parity.all_inputs orders them.

    Derivation: ∂ℓ/∂ŷ = α(x) + β(x)·h(x) (affine_loss_derivative), so ∇F_h = (1/N) Σ_x α J +
    (1/N) Σ_x h(x) β(x) J(x). The parities are the rows of a Walsh–Hadamard matrix (H Hᵀ = N·I,
    Σ_h h(x) = N·1[x = 0]), so E_h‖∇F_h − E∇F‖² = (1/N²) Σ_{x ≠ 0} β(x)² ‖J(x)‖² ≤ G²/N, Thm 1's
    bound; for the hinge β² = 1 where |p| < 1 (¼ elsewhere), so at init the bound is nearly met.
    """
    _, beta = affine_loss_derivative(loss, pred.double())
    n = pred.shape[0]
    w = beta.pow(2) * jac_norm2.double()
    return float(w[1:].sum()) / n**2


def fit_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys against xs (NaN when fewer than two finite points)."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    if len(pts) < 2:
        return math.nan
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return math.nan
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def log2_or_nan(v: float) -> float:
    return math.log2(v) if v > 0 and math.isfinite(v) else math.nan


def hadamard_matrix(bits: int, dtype: torch.dtype = torch.float64,
                    device: torch.device | str = "cpu") -> Tensor:
    """H[s, i] = (−1)^popcount(s & i) for s, i < 2^bits: the 2^bits parities' values, (2^b, 2^b)."""
    i = torch.arange(1 << bits, device=device)
    anded = i[:, None] & i[None, :]
    ones = sum((anded >> k) & 1 for k in range(bits)) if bits else torch.zeros_like(anded)
    return (1 - 2 * (ones % 2)).to(dtype)


def walsh_hadamard(v: Tensor, group_bits: int = 6) -> Tensor:
    """Unnormalised Walsh–Hadamard transform along dim 0: out[s] = Σ_i (−1)^popcount(s & i) v[i].

    v (N, ...) with N = 2^d. With rows in tasks.parity.all_inputs order (bit k of i is x_k) and
    secrets indexed the same way, out[s] = Σ_x χ_s(x) v[x] for the parity χ_s: all 2^d parities
    at once. The transform factorises over the bits of i: `group_bits` bits at a time, lowest
    first, it is one batched matmul with a 2^g × 2^g Hadamard matrix (⌈d/g⌉ passes over memory,
    2^g multiply-adds per entry per pass, no permutes: the transformed bits move behind the
    untransformed ones, so the final row-major order is s's).
    """
    n = v.shape[0]
    d = n.bit_length() - 1
    if n < 1 or 1 << d != n:
        raise ValueError(f"walsh_hadamard needs 2^d rows, got {n}")
    h = v.reshape(n, -1)
    rest, left = n, d
    while left > 0:
        g = min(group_bits, left)
        b = 1 << g
        h = torch.matmul(hadamard_matrix(g, v.dtype, v.device), h.reshape(rest // b, b, -1))
        rest, left = rest // b, left - g
    return h.reshape(v.shape)


def affine_loss_derivative(loss: str, pred: Tensor) -> tuple[Tensor, Tensor]:
    """(α, β) with ∂ℓ/∂ŷ(p, y) = α + β·y for labels y ∈ {±1} (SPEC D2).

    hinge max(0, 1 − y·p): ∂ℓ/∂ŷ = −y·1[y·p < 1] = −(a − b)/2 − y·(a + b)/2 with a = 1[p < 1],
    b = 1[p > −1]; square ½(p − y)²: ∂ℓ/∂ŷ = p − y, so α = p, β = −1. Because β·y is linear in the
    target, the gradients for all parities are one Walsh–Hadamard transform of β(x)·∂p(x)/∂w.
    """
    if loss == "hinge":
        a = (pred < 1).to(pred.dtype)
        b = (pred > -1).to(pred.dtype)
        return -(a - b) / 2, -(a + b) / 2
    if loss == "square":
        return pred.clone(), -torch.ones_like(pred)
    raise ValueError(f"unknown loss {loss!r}; choose hinge or square")
