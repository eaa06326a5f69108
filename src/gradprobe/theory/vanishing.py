"""The vanishing-gradient product bound ("Why are deep neural networks hard to train?", Nielsen).

δ^l = Σ'(z^l)(W^{l+1})ᵀ … Σ'(z^L) ∂C/∂a^L, so per example
    ‖∂C/∂b^l‖ = ‖δ^l‖ ≤ γ_l · ∏_{r=l+1..L} (γ_r ‖W^r‖₂) · ‖∂C/∂a^L‖,
with γ_r = sup σ_r' (1/4 sigmoid, 1 tanh and ReLU; 1 when layer r has no activation), and
‖∂C/∂W^l‖_F = ‖δ^l‖ ‖a^{l−1}‖ ≤ (bias bound) · ‖a^{l−1}‖. For C = ½‖y − a^L‖², ∂C/∂a^L = a^L − y.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# sup over z of the activation's derivative
SUP_DERIVATIVE = {
    "sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "identity": 1.0, "softplus": 1.0,
    "hardtanh": 1.0, "relu6": 1.0,
    "gelu": 1.1289,  # max of Φ(z) + zφ(z), at z = √2
    "silu": 1.0998,  # max of σ(z)(1 + z(1 − σ(z))), at z ≈ 2.40
}


def sup_derivative(name: str, negative_slope: float = 0.01) -> float:
    """γ = sup σ' for a named activation ('leaky_relu' uses max(1, |negative_slope|))."""
    if name == "leaky_relu":
        return max(1.0, abs(negative_slope))
    if name not in SUP_DERIVATIVE:
        raise ValueError(f"no known sup derivative for {name!r}")
    return SUP_DERIVATIVE[name]


def bias_gradient_bound(
    gammas: Sequence[float], spectral_norms: Sequence[float], output_grad_norm: float
) -> list[float]:
    """Per-layer bounds on ‖∂C/∂b^l‖, l = 1..L (list index l−1).

    gammas[l−1]: γ of the activation after layer l; spectral_norms[l−1] = ‖W^l‖₂;
    output_grad_norm = ‖∂C/∂a^L‖ for one example.
    """
    if len(gammas) != len(spectral_norms):
        raise ValueError("gammas and spectral_norms must have one entry per layer")
    L = len(gammas)
    out = [0.0] * L
    acc = float(output_grad_norm)
    for l in range(L - 1, -1, -1):  # 0-based layer index
        acc *= gammas[l]
        out[l] = acc
        acc *= spectral_norms[l]
    return out


def uniform_bias_bound(gamma: float, spectral_norms_above: Sequence[float],
                       output_grad_norm: float) -> float:
    """γ^{L−l+1} ∏_{r=l+1..L} ‖W^r‖₂ · ‖a^L − y‖ (the text's form, one γ for every layer)."""
    k = len(spectral_norms_above)
    return gamma ** (k + 1) * math.prod(spectral_norms_above) * output_grad_norm


def weight_gradient_bound(bias_bound: float, input_norm: float) -> float:
    """‖∂C/∂W^l‖_F ≤ ‖∂C/∂b^l‖-bound · ‖a^{l−1}‖ (an equality for the measured δ^l)."""
    return bias_bound * input_norm
