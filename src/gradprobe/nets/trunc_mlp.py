"""ReLU MLPs with the initialisation of Shalev-Shwartz et al.'s code (SPEC A7, A8).

Weights truncated normal (±2 std), std 1/sqrt(fan_in); biases zero. Used for A7's vanilla deep
autoencoder (sizes (n, 500, 100, 6, 100, 100, n), the 6-unit code linear) and A8's networks
(100→100→100→100→out, and the linear 100→1 readouts).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gradprobe.nets.init import trunc_normal_fan_in_


def trunc_mlp(sizes: Sequence[int], generator: torch.Generator,
              linear_layers: Sequence[int] = ()) -> nn.Sequential:
    """Linear layers sizes[i] → sizes[i+1] with a ReLU after each but the last and those in
    `linear_layers` (0-based layer indices, e.g. an autoencoder's code layer)."""
    if len(sizes) < 2:
        raise ValueError("trunc_mlp: sizes needs at least [n_in, n_out]")
    last = len(sizes) - 2
    if any(not 0 <= i < last for i in linear_layers):
        raise ValueError(f"trunc_mlp: linear_layers must index hidden layers 0..{last - 1}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        trunc_normal_fan_in_(lin.weight, generator)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i != last and i not in linear_layers:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
