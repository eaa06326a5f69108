"""Closed forms for the parity family (Shalev-Shwartz, Shamir & Shammah 2017, §2.2).

Theorem 1: for pairwise-orthogonal targets with E h² ≤ 1, E_x‖∂p_w(x)/∂w‖² ≤ G(w)² and the square
loss or a 1-Lipschitz classification loss r(ŷ·y), Var(H, F, w) ≤ G(w)² / |H|; for the 2^d
parities on {0,1}^d, Var ≤ G(w)² / 2^d.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor


def theorem1_bound(g2: float, n_targets: int) -> float:
    """Shalev-Shwartz et al. 2017, Thm 1: Var(H, F, w) ≤ G(w)² / |H|."""
    return g2 / n_targets


def parity_bound(g2: float, d: int) -> float:
    """Thm 1 for the 2^d parities of {0,1}^d: G(w)² / 2^d."""
    return g2 / 2.0**d


def parity_hinge_variance(pred: Tensor, jac_norm2: Tensor) -> float:
    """Var(H, F, w) over all 2^d parities with the hinge loss, in closed form.

    pred (N,) = p_w(x), jac_norm2 (N,) = ‖∂p_w(x)/∂w‖², both over all N = 2^d inputs, with x = 0
    (the all-zeros input, where every parity is +1) at index 0, as tasks.parity.all_inputs orders
    them.

    Derivation: the hinge derivative is −h·1[h·p < 1] = −h·a(x) − b(x) with a = (1[p<1] +
    1[p>−1])/2 ∈ {1/2, 1} and b independent of h, so ∇F_h = −(1/N) Σ_x h(x) a(x) J(x) + const.
    The parities are the rows of a Walsh–Hadamard matrix (H Hᵀ = N·I, Σ_h h(x) = N·1[x = 0]), so
    by Parseval E_h‖∇F_h‖² = (1/N²) Σ_x a²‖J‖² and ‖E_h ∇F_h‖² = a(0)²‖J(0)‖²/N², hence
        Var = (1/N²) Σ_{x ≠ 0} a(x)² ‖J(x)‖²  ≤  G²/N   (Thm 1's bound, met when |p| < 1 on x ≠ 0).
    """
    pred = pred.double()
    a = ((pred < 1).double() + (pred > -1).double()) / 2
    n = pred.shape[0]
    w = a.pow(2) * jac_norm2.double()
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
