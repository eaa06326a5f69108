"""Scalar highway nets x_l = γ1·x_{l−1} + γ2·W_l ρ(N(x_{l−1})), γ1² + γ2² = 1.

Balduzzi et al. 2017, Corollary 1: gradient correlation (γ1² + γ2²/2)^L; with γ1² = 1 − 1/L it
tends to e^{−1/2} whatever the depth. A ResNet with α = γ1, β = γ2.
"""

from __future__ import annotations

import math

import torch

from gradprobe.nets.resnet import ResNet


def highway_gammas(blocks: int, gamma1_sq: float | None = None) -> tuple[float, float]:
    """(γ1, γ2) with γ1² = gamma1_sq (default 1 − 1/L, Corollary 1) and γ2² = 1 − γ1²."""
    g1sq = 1.0 - 1.0 / blocks if gamma1_sq is None else float(gamma1_sq)
    if not 0.0 <= g1sq <= 1.0:
        raise ValueError(f"gamma1_sq must be in [0, 1], got {g1sq}")
    return math.sqrt(g1sq), math.sqrt(1.0 - g1sq)


class HighwayNet(ResNet):
    """A ResNet whose blocks mix the skip and the branch with scalars γ1² + γ2² = 1."""

    def __init__(self, width: int, blocks: int, *, gamma1_sq: float | None = None,
                 norm: str = "bn", generator: torch.Generator | None = None, **kw) -> None:
        g1, g2 = highway_gammas(blocks, gamma1_sq)
        super().__init__(width, blocks, alpha=g1, beta=g2, norm=norm, generator=generator, **kw)
        self.gamma1, self.gamma2 = g1, g2
