"""Nets f: R → R over a 1-D input grid (Balduzzi et al. 2017, Figs. 1–4; SPEC C1, C3).

The first (scalar-input) layer is never normalised: centring it over the grid would put every
kink at x = 0. Normalisation statistics of the later layers are the grid's own, detached
(`nets.norm.FrozenNorm`), so one backward of f.sum() gives df/dx at every grid point.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from gradprobe.config import FreeChoice
from gradprobe.nets.mlp import MLP
from gradprobe.nets.resnet import ResNet

FirstLayer = Literal["unit", "lecun"]
# The choice both C1 and C3 rest on (SPEC D1), declared once.
FIRST_LAYER_CHOICE = FreeChoice(("unit", "lecun"), "the paper does not give the resnet's first "
                                "(scalar-input) layer's scale: N(0, 1) or the N(0, 1/N) of the "
                                "feed-forward nets' first layer")


def first_layer_std(first_layer: FirstLayer, width: int) -> float:
    """Std of the resnet's first-layer weight and bias: "unit" N(0, 1), "lecun" N(0, 1/N)
    (the scale of the feed-forward nets' first layer). The paper does not say which."""
    if first_layer == "unit":
        return 1.0
    if first_layer == "lecun":
        return 1.0 / math.sqrt(width)
    raise ValueError(f"first_layer must be 'unit' or 'lecun', got {first_layer!r}")


def scalar_feedforward(depth: int, width: int, norm: str, g: torch.Generator) -> nn.Module:
    """depth hidden ReLU layers of `width`; first layer v, b ~ N(0, 1/N) (the 1-layer net of
    Fig. 1a); He init below; `norm` ('none', 'center', 'bn') from layer 2; readout w ~ N(0, 1/N)."""
    m = MLP([1] + [width] * depth + [1], "relu", norm=norm, norm_from=2, init="he", generator=g)
    with torch.no_grad():
        m[0].weight.normal_(0.0, 1.0 / math.sqrt(width), generator=g)
        m[0].bias.normal_(0.0, 1.0 / math.sqrt(width), generator=g)
        m[-1].weight.normal_(0.0, 1.0 / math.sqrt(width), generator=g)
    return m


def scalar_resnet(depth: int, beta: float, width: int, g: torch.Generator, *,
                  embed_std: float = 1.0, embed_relu: bool = False) -> nn.Module:
    """x_1 = v x + b (or ρ(v x + b)) with v, b ~ N(0, embed_std²), then depth − 1 blocks
    x_l = x_{l−1} + β W_l ρ(BN(x_{l−1})), then a linear readout: depth weight layers before the
    readout, like `scalar_feedforward`."""
    m = ResNet(width, depth - 1, beta=beta, norm="bn", in_features=1, out_features=1,
               embed_bias_std=embed_std, generator=g,
               embed_activation="relu" if embed_relu else None)
    with torch.no_grad():
        m.embed[0].weight.normal_(0.0, embed_std, generator=g)
    return m
