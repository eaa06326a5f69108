"""The net of Shalev-Shwartz et al. 2017, §2 (SPEC A1–A3): Linear(d, 10d) → ReLU → Linear(10d, 1).

It can express every parity of d bits (the paper's Lemma 3); weights are truncated normal with std
1/sqrt(fan_in) (the authors' code), biases zero.
"""

from __future__ import annotations

import torch
from torch import nn

from gradprobe.nets.init import trunc_normal_fan_in_


def parity_net(d: int, generator: torch.Generator, width_factor: int = 10) -> nn.Sequential:
    """Linear(d, 10d) → ReLU → Linear(10d, 1); weights trunc-normal std 1/sqrt(fan_in), bias 0."""
    net = nn.Sequential(nn.Linear(d, width_factor * d), nn.ReLU(), nn.Linear(width_factor * d, 1))
    for layer in (net[0], net[2]):
        trunc_normal_fan_in_(layer.weight, generator)
        nn.init.zeros_(layer.bias)
    return net
