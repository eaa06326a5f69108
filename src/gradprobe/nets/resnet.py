"""Residual nets x_l = α·x_{l−1} + β·W_l ρ(N(x_{l−1})) (Balduzzi et al. 2017, Eq. 2 and §4).

N is 'bn' (batch norm with frozen statistics), 'center' or 'none'. α = 1 gives the resnets of
SPEC C1–C3; α² + β² = 1 gives the scalar highway nets of Corollary 1 (see nets/highway.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradprobe.nets.mlp import activation, init_weight_
from gradprobe.nets.norm import norm_layer


class ResBlock(nn.Module):
    """x ↦ α·x + β·W ρ(N(x)); W square, no bias, initialised by `init`."""

    def __init__(self, width: int, alpha: float, beta: float, norm: str, act: str,
                 init: str, g: torch.Generator) -> None:
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)
        self.norm = norm_layer(norm, width)
        self.act = activation(act)
        self.linear = nn.Linear(width, width, bias=False)
        init_weight_(self.linear.weight, init, g)

    def forward(self, x: Tensor) -> Tensor:
        return self.alpha * x + self.beta * self.linear(self.act(self.norm(x)))


class ResNet(nn.Module):
    """embed → `blocks` ResBlocks → readout.

    in_features: when given, embed = Linear(in_features, width) → `embed_activation` (None:
    linear) with biases ~ N(0, embed_bias_std²), not normalised; else the input is x_0 itself
    (width features). out_features: when given, readout = Linear(width, out_features); else the
    net returns x_L (sum it for Σ_p f_p, as in SPEC C2).
    """

    def __init__(
        self,
        width: int,
        blocks: int,
        *,
        beta: float = 1.0,
        alpha: float = 1.0,
        norm: str = "bn",
        act: str = "relu",
        init: str = "he",
        in_features: int | None = None,
        out_features: int | None = None,
        embed_bias_std: float = 1.0,
        embed_activation: str | None = "relu",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        if in_features is not None:
            lin = nn.Linear(in_features, width)
            init_weight_(lin.weight, init, g)
            with torch.no_grad():
                lin.bias.normal_(0.0, embed_bias_std, generator=g)
            tail = activation(embed_activation) if embed_activation else nn.Identity()
            self.embed: nn.Module = nn.Sequential(lin, tail)
        else:
            self.embed = nn.Identity()
        self.blocks = nn.Sequential(
            *[ResBlock(width, alpha, beta, norm, act, init, g) for _ in range(blocks)]
        )
        if out_features is not None:
            self.readout: nn.Module = nn.Linear(width, out_features)
            init_weight_(self.readout.weight, init, g)
            with torch.no_grad():
                self.readout.bias.zero_()
        else:
            self.readout = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.blocks(self.embed(x)))
