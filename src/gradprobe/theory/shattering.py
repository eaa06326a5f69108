"""Closed forms of Balduzzi et al. 2017, "The Shattered Gradients Problem" (SPEC C2, C3).

C(i) = E_W[r_i²] and R = C(i, j)/sqrt(C(i) C(j)) for the gradient r_i = Σ_p ∂f_p/∂n at input
x^(i) of a neuron n that is L layers below the output, for "typical" pairs of inputs (half of the
units active for each, a quarter for both), He initialisation (σ² = 2/N).

Batch norm, back-propagated with its statistics frozen, multiplies the backward signal of each unit
by 1/s where s² is the batch variance of the unit's input. Per block x_l = α x_{l−1} + β W ρ(N(x))
the gradient's variance is multiplied by α² + β²·E[1/s_l²] and the covariance of a typical pair by
α² + β²·E[1/s_l²]/2 (He: N·(2/N) = 2; a unit is active on ½ of the inputs and co-active on ¼ of
the pairs). Thm 3 takes s_l² = 1 + (l − 1)β², i.e. every branch adds β² to the batch variance.
With BN's centring a branch adds less: W ρ(z) of a standardised z has per-unit mean
Σ_k W_jk E ρ(z), which is constant over the batch, and batch variance 2·Var ρ(z) = 1 − 1/π ≈ 0.68
(`he_branch_variance`). The `kappa` arguments below carry that per-branch variance: κ = 1 is the
theorems' reading, κ = 1 − 1/π what BN actually divides by.
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


def relu_variance() -> float:
    """Var ρ(z) for z ~ N(0, 1): E ρ² − (E ρ)² = 1/2 − 1/(2π) ≈ 0.341."""
    return 0.5 - 1.0 / (2.0 * math.pi)


def he_branch_variance() -> float:
    """κ = 1 − 1/π ≈ 0.682: batch variance per unit of W ρ(z), W ~ N(0, 2/N), z standardised
    over the batch (2·Var ρ(z)); the mean part Σ_k W_jk E ρ(z) is a per-unit constant."""
    return 2.0 * relu_variance()


def bn_scale_sq(l: int, beta: float, kappa: float = 1.0) -> float:
    """s_l² = 1 + (l − 1)β²κ: the variance of x_{l−1} that BN divides out in block l (1-based);
    κ = 1 is Thm 3's reading."""
    return 1.0 + (l - 1) * beta**2 * kappa


def norm_scales(L: int, alpha: float, beta: float, kappa: float = 1.0,
                s1: float = 1.0) -> list[float]:
    """Batch variances s_1², …, s_L² of the blocks' inputs for x_l = α x_{l−1} + β·branch, each
    branch adding batch variance β²κ: s_1² = s1, s_{l+1}² = α² s_l² + β² κ."""
    out = [float(s1)]
    for _ in range(L - 1):
        out.append(alpha**2 * out[-1] + beta**2 * kappa)
    return out


def normalised_variance(inverse_scales: list[float], alpha: float, beta: float) -> float:
    """Gradient variance after the blocks whose E[1/s_l²] are `inverse_scales`:
    ∏ (α² + β² E[1/s_l²]) (feed-forward + BN: α = 0, β = 1)."""
    return math.prod(alpha**2 + beta**2 * m for m in inverse_scales)


def normalised_covariance(inverse_scales: list[float], alpha: float, beta: float) -> float:
    """Covariance of a typical pair: ∏ (α² + β² E[1/s_l²]/2)."""
    return math.prod(alpha**2 + beta**2 * m / 2.0 for m in inverse_scales)


def normalised_correlation(inverse_scales: list[float], alpha: float, beta: float) -> float:
    """R = normalised_covariance / normalised_variance."""
    return (normalised_covariance(inverse_scales, alpha, beta)
            / normalised_variance(inverse_scales, alpha, beta))


def resnet_bn_variance(L: int, beta: float, kappa: float = 1.0) -> float:
    """Thm 3 (i): ∏_{l=1..L} (1 + β²/s_l²) (κ = 1: = 1 + Lβ², it telescopes)."""
    return math.prod(1.0 + beta**2 / bn_scale_sq(l, beta, kappa) for l in range(1, L + 1))


def resnet_bn_covariance(L: int, beta: float, kappa: float = 1.0) -> float:
    """Thm 3 (ii): ∏_{l=1..L} (1 + β²/(2 s_l²))."""
    return math.prod(1.0 + beta**2 / (2.0 * bn_scale_sq(l, beta, kappa))
                     for l in range(1, L + 1))


def resnet_bn_correlation(L: int, beta: float, kappa: float = 1.0) -> float:
    """Thm 3: R = covariance / variance (exact product); ≈ 1/sqrt(1 + β²(L − 1)) at κ = 1."""
    return resnet_bn_covariance(L, beta, kappa) / resnet_bn_variance(L, beta, kappa)


def feedforward_bn_variance_ratio(L: int, kappa: float | None = None) -> float:
    """C(L)/C(1) of a He feed-forward net with BN after every linear layer: the first BN divides
    by the batch variance 2 of W x (He on unit-variance inputs), as the readout multiplies by 2;
    every later one by κ = 1 − 1/π, so C(L)/C(1) = κ^−(L−1) ≈ 1.47^(L−1). Thm 1 (i): 1."""
    k = he_branch_variance() if kappa is None else kappa
    return k ** (-(L - 1))


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


def highway_bn_scales(L: int, gamma1_sq: float | None = None,
                      kappa: float | None = None) -> list[float]:
    """Batch variances of the BN highway's block inputs: s_1² = 1, s_{l+1}² = γ1² s_l² + γ2² κ
    (κ = 1 − 1/π by default); they fall from 1 towards κ, so BN amplifies the backward signal."""
    g1 = 1.0 - 1.0 / L if gamma1_sq is None else gamma1_sq
    k = he_branch_variance() if kappa is None else kappa
    return norm_scales(L, math.sqrt(g1), math.sqrt(1.0 - g1), k)


def highway_bn_correlation(L: int, gamma1_sq: float | None = None,
                           kappa: float | None = None) -> float:
    """Cor. 1 (ii) with BN's actual division: ∏(γ1² + γ2²/(2s_l²)) / ∏(γ1² + γ2²/s_l²)."""
    g1 = 1.0 - 1.0 / L if gamma1_sq is None else gamma1_sq
    inv = [1.0 / s for s in highway_bn_scales(L, g1, kappa)]
    return normalised_correlation(inv, math.sqrt(g1), math.sqrt(1.0 - g1))


def highway_limit() -> float:
    """lim_{L→∞} (1 − 1/(2L))^L = e^{−1/2} ≈ 0.607: depth-independent."""
    return math.exp(-0.5)


def relu_kernel(rho: float) -> float:
    """E[ρ(u)ρ(v)] / E[ρ(u)²] for unit Gaussians u, v with correlation ρ (the arc-cosine kernel):
    (√(1 − ρ²) + (π − arccos ρ)·ρ)/π; 1/π at ρ = 0, 1 at ρ = 1."""
    r = min(max(rho, -1.0), 1.0)
    return (math.sqrt(1.0 - r * r) + (math.pi - math.acos(r)) * r) / math.pi


def coactivation(rho: float) -> float:
    """P(u > 0, v > 0) for centred Gaussians with correlation ρ: 1/4 + arcsin(ρ)/(2π).
    The theorems' "typical pair" is ρ = 0 (co-activation ¼)."""
    return 0.25 + math.asin(min(max(rho, -1.0), 1.0)) / (2.0 * math.pi)


def feedforward_correlation_tracked(L: int, rho0: float = 0.0) -> float:
    """Thm 1 (ii) without BN, with the inputs' correlation tracked through the layers: a ReLU
    layer maps the correlation of two pre-activations ρ to relu_kernel(ρ) > ρ, so deeper layers
    see co-activation coactivation(ρ) > ¼. R = ∏_{l=1..L} 2·coactivation(ρ_{l−1}), ρ_0 = rho0
    (≈ 0 for independent Gaussian inputs), ρ_l = relu_kernel(ρ_{l−1}); = 2^−L when every ρ = 0."""
    R, rho = 1.0, rho0
    for _ in range(L):
        R *= 2.0 * coactivation(rho)
        rho = relu_kernel(rho)
    return R


def resnet_correlation_tracked(L: int, rho0: float = 0.0) -> float:
    """Thm 2 (ii) (α = β = 1, no BN) with the correlation tracked: the branch W ρ(x) adds
    variance v and covariance v·relu_kernel(ρ) to a skip of variance v, so
    ρ_l = (ρ_{l−1} + relu_kernel(ρ_{l−1}))/2 and R = ∏ (1 + 2·coactivation(ρ_{l−1}))/2
    (= (3/4)^L when every ρ = 0). Rescaling skip and branch by 1/√2 leaves both unchanged."""
    R, rho = 1.0, rho0
    for _ in range(L):
        R *= (1.0 + 2.0 * coactivation(rho)) / 2.0
        rho = (rho + relu_kernel(rho)) / 2.0
    return R


def coactivation_from_activation(p: float, n: int) -> float:
    """Fraction of the n(n−1) ordered distinct input pairs on which a unit active on a fraction
    p of n inputs is active for both: p(np − 1)/(n − 1) (SPEC C3)."""
    return p * (n * p - 1.0) / (n - 1.0)
