"""The A6 model: one affine layer d → k read on basis-vector inputs (SPEC A6)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradprobe.nets.init import trunc_normal_fan_in_


class BasisAffine(nn.Module):
    """Affine map R^d → R^k evaluated on basis vectors: forward(i) = W e_i + b = W[:, i] + b.

    Same parameters (weight (k, d), bias (k,)) and gradients as nn.Linear on one-hot inputs,
    without the (batch, d) one-hot matrix.
    """

    def __init__(self, d: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, d))
        self.bias = nn.Parameter(torch.zeros(k))
        trunc_normal_fan_in_(self.weight, generator)

    def forward(self, idx: Tensor) -> Tensor:
        return self.weight.t()[idx] + self.bias  # (b, k) logits
