"""Conditioning of the piecewise-linear encoding problem (Shalev-Shwartz et al. 2017, ext. §4).

Pure math on numbers (float64); imports nothing from gradprobe: the caller passes the encoding
matrix W (`tasks.pwl.ramp_matrix(n)`) and the number of kinks k.
Notation: f = W p with E[p pᵀ] = λ I, λ = E[a²]·k/n = k/(3n) for k kinks with amplitudes
U[−1, 1] (amplitudes are independent and zero-mean, so the off-diagonal terms vanish).

fc (a linear map M, p̂ = M f): F(M) = ½ E‖M f − p‖², whose Hessian is λ WᵀW (per row of M).
  Lemma 2 (expected SGD iterate): from M₀ = 0 with step η,
      E[M_t] W − I = −(I − ηλ WᵀW)^t,
  so the expected iterate's relative error on a random p is sqrt(mean_i (1 − ηλσ_i²)^{2t}).
  Theorem 3 (lower bound): for every η that keeps the expected iterate from diverging
  (η ≤ 2/(λσ₁²)), the slowest direction shrinks by at least a factor (1 − 2σ_n²/σ₁²) per step,
  so reaching error ε along it needs t ≥ (σ₁²/(2σ_n²))·ln(1/ε) iterations: linear in the
  condition number σ₁²/σ_n² ≈ 1.35·n⁴.
conv (a 3-tap filter on windows x_i = (f_{i−2}, f_{i−1}, f_i)): the Hessian is
  C = (1/n) Σ_i E[x_i x_iᵀ], with cond(C) = Θ(n³); the same argument gives the number of
  iterations as Θ(cond(C)). Whitening the windows by C^{-1/2} makes the Hessian I (cond 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def p_variance(n: int, k: int) -> float:
    """λ with E[p pᵀ] = λ I: each entry is non-zero with probability k/n, E[a²] = 1/3."""
    return k / (3.0 * n)


def singular_values(w: torch.Tensor) -> torch.Tensor:
    """Singular values of W (n, n), descending, float64."""
    return torch.linalg.svdvals(w.to(torch.float64))


def squared_condition(w: torch.Tensor) -> float:
    """σ₁(W)²/σ_n(W)², the condition number of the fc problem's Hessian λ WᵀW."""
    s = singular_values(w)
    return float((s[0] / s[-1]) ** 2)


def window_covariance(w: torch.Tensor, k: int, padded: bool = True) -> torch.Tensor:
    """C = mean over positions of E[x_i x_iᵀ] (3×3, float64), exact under the curve distribution.

    padded=True averages over the n windows the left-padded conv sees (zeros before f_0);
    padded=False over the n − 2 windows inside the curve (the convention of SPEC's reference
    numbers, e.g. cond(C) = 1.55e6 at n = 100).
    """
    n = w.shape[-1]
    w = w.to(torch.float64)
    sigma_f = p_variance(n, k) * (w @ w.T)  # E[f fᵀ]
    if padded:
        sigma = torch.zeros(n + 2, n + 2, dtype=torch.float64)
        sigma[2:, 2:] = sigma_f
        count = n
    else:
        sigma, count = sigma_f, n - 2
    c = torch.empty(3, 3, dtype=torch.float64)
    idx = torch.arange(count)
    for a in range(3):
        for b in range(3):
            c[a, b] = sigma[idx + a, idx + b].mean()
    return c


def condition_number(c: torch.Tensor) -> float:
    """λ_max/λ_min of a symmetric positive definite matrix."""
    e = torch.linalg.eigvalsh(c.to(torch.float64))
    return float(e[-1] / e[0])


def inverse_sqrt(c: torch.Tensor) -> torch.Tensor:
    """C^{-1/2} of a symmetric positive definite matrix (float64)."""
    e, v = torch.linalg.eigh(c.to(torch.float64))
    return (v * e.rsqrt()) @ v.T


def fitted_exponent(ns: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(values) against log(ns)."""
    x = torch.log(torch.tensor(list(ns), dtype=torch.float64))
    y = torch.log(torch.tensor(list(values), dtype=torch.float64))
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def lemma2_expected_error(sq_sing: torch.Tensor, steps: Sequence[int], step_size: float,
                          curvature: float) -> list[float]:
    """Relative error of the expected SGD iterate (Lemma 2) on a random isotropic target.

    sq_sing: the eigenvalues s_i of the Hessian up to the factor `curvature` (σ_i² for fc with
    curvature λ); the error after t steps from 0 is sqrt(mean_i (1 − η·curvature·s_i)^{2t}).
    """
    contraction = (1.0 - step_size * curvature * sq_sing.to(torch.float64)).abs()
    out = []
    for t in steps:
        out.append(float(torch.sqrt((contraction ** (2 * int(t))).mean())))
    return out


def fc_expected_error(w: torch.Tensor, steps: Sequence[int], k: int) -> list[float]:
    """Lemma 2 for the fc map at the largest monotone step η = 1/(λσ₁²), from M₀ = 0."""
    s2 = singular_values(w) ** 2
    lam = p_variance(w.shape[-1], k)
    return lemma2_expected_error(s2, steps, 1.0 / (lam * float(s2[0])), lam)


def conv_expected_error(w: torch.Tensor, steps: Sequence[int], k: int,
                        whiten: bool = False) -> list[float]:
    """Lemma 2's recursion for the 3-tap filter from 0 at η = 1/λ_max(C), for the ramp W
    (whose inverse is the filter (1, −2, 1)).

    The filter error δ_t = (I − ηC)^t δ₀ with δ₀ = −(1, −2, 1); the relative error of p̂ is
    sqrt(n·δᵀCδ / E‖p‖²), E‖p‖² = k/3. With whiten=True the Hessian is I (one step suffices).
    """
    n = w.shape[-1]
    c = window_covariance(w, k)
    target = torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64)
    if whiten:
        target = torch.linalg.cholesky(c).T @ target  # any square root: the error is the same
        c = torch.eye(3, dtype=torch.float64)
    e, v = torch.linalg.eigh(c)
    eta = 1.0 / float(e[-1])
    coeff = v.T @ (-target)  # δ₀ in C's eigenbasis
    out = []
    for t in steps:
        delta = coeff * (1.0 - eta * e) ** int(t)
        out.append(math.sqrt(max(n * float((e * delta * delta).sum()) / (k / 3.0), 0.0)))
    return out


def theorem3_iterations(condition: float, eps: float = 1e-2) -> float:
    """Theorem 3's lower bound on iterations to shrink the slowest direction to eps:
    t ≥ (κ/2)·ln(1/eps) for any step size that keeps the expected iterate bounded."""
    return 0.5 * condition * math.log(1.0 / eps)
