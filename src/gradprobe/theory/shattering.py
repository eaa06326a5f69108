"""Closed forms of Balduzzi et al. 2017, "The Shattered Gradients Problem" (SPEC C2, C3).

C(i) = E_W[r_i²] and R = C(i, j)/sqrt(C(i) C(j)) for the gradient r_i = Σ_p ∂f_p/∂n at input
x^(i) of a neuron n that is L layers below the output, for "typical" pairs of inputs (half of the
units active for each, a quarter for both), He initialisation (σ² = 2/N).
"""

from __future__ import annotations

import math


def feedforward_variance(L: int) -> float:
    """Thm 1 (i): C_fnn(i) = 1 (He init preserves the variance)."""
    return 1.0


def feedforward_correlation(L: int) -> float:
    """Thm 1 (ii): R_fnn = 2^−L."""
    return 2.0 ** (-L)


def resnet_variance(L: int, alpha: float = 1.0, beta: float = 1.0) -> float:
    """Thm 2 with x_l = α(x_{l−1} + β W ρ(x_{l−1})), no BN: C = (α²(1 + β²))^L (2^L at α=β=1)."""
    return (alpha**2 * (1.0 + beta**2)) ** L


def resnet_correlation(L: int, beta: float = 1.0) -> float:
    """Thm 2: R = ((1 + β²/2)/(1 + β²))^L; (3/4)^L at β = 1 (α cancels)."""
    return ((1.0 + beta**2 / 2.0) / (1.0 + beta**2)) ** L


def bn_scale_sq(l: int, beta: float) -> float:
    """s_l² = 1 + (l − 1)β²: the variance of x_{l−1} that BN divides out in block l (1-based)."""
    return 1.0 + (l - 1) * beta**2


def resnet_bn_variance(L: int, beta: float) -> float:
    """Thm 3 (i): ∏_{l=1..L} (1 + β²/s_l²) (= 1 + Lβ², it telescopes)."""
    return math.prod(1.0 + beta**2 / bn_scale_sq(l, beta) for l in range(1, L + 1))


def resnet_bn_covariance(L: int, beta: float) -> float:
    """Thm 3 (ii): ∏_{l=1..L} (1 + β²/(2 s_l²))."""
    return math.prod(1.0 + beta**2 / (2.0 * bn_scale_sq(l, beta)) for l in range(1, L + 1))


def resnet_bn_correlation(L: int, beta: float) -> float:
    """Thm 3: R = covariance / variance (exact product); ≈ 1/sqrt(1 + β²(L − 1))."""
    return resnet_bn_covariance(L, beta) / resnet_bn_variance(L, beta)


def resnet_bn_correlation_approx(L: int, beta: float) -> float:
    """The paper's summary R ≈ 1/sqrt(1 + β²(L − 1)) (0.71 at L=100, β=0.1)."""
    return 1.0 / math.sqrt(1.0 + beta**2 * (L - 1))


def highway_variance(L: int, gamma1_sq: float | None = None) -> float:
    """Cor. 1 (i): (γ1² + γ2²)^L = 1."""
    return 1.0


def highway_correlation(L: int, gamma1_sq: float | None = None) -> float:
    """Cor. 1 (ii): R = (γ1² + γ2²/2)^L with γ2² = 1 − γ1²; default γ1² = 1 − 1/L."""
    g1 = 1.0 - 1.0 / L if gamma1_sq is None else gamma1_sq
    return (g1 + (1.0 - g1) / 2.0) ** L


def highway_limit() -> float:
    """lim_{L→∞} (1 − 1/(2L))^L = e^{−1/2} ≈ 0.607: depth-independent."""
    return math.exp(-0.5)


def coactivation_from_activation(p: float, n: int) -> float:
    """Fraction of the n(n−1) ordered distinct input pairs on which a unit active on a fraction
    p of n inputs is active for both: p(np − 1)/(n − 1) (SPEC C3)."""
    return p * (n * p - 1.0) / (n - 1.0)
