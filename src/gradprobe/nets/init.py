"""Seeded initialisers shared by the experiments' nets (all take an explicit torch.Generator)."""

from __future__ import annotations

import math

import torch
from torch import nn


def fan_in(weight: torch.Tensor) -> int:
    """Inputs per output unit: in_features for Linear, in_channels·kh·kw for conv kernels."""
    return int(weight[0].numel()) if weight.dim() > 1 else int(weight.numel())


@torch.no_grad()
def trunc_normal_fan_in_(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Truncated normal (±2 std), std 1/sqrt(fan_in): the init of Shalev-Shwartz et al.'s code."""
    std = 1.0 / math.sqrt(fan_in(weight))
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std, generator=generator)


@torch.no_grad()
def he_normal_(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """He et al. 2015: N(0, 2/fan_in), for ReLU layers."""
    return weight.normal_(0.0, math.sqrt(2.0 / fan_in(weight)), generator=generator)


@torch.no_grad()
def lecun_normal_(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """N(0, 1/fan_in): Nielsen's 'weights N(0, 1/n_in)' and the 1/N init of Balduzzi et al."""
    return weight.normal_(0.0, math.sqrt(1.0 / fan_in(weight)), generator=generator)


@torch.no_grad()
def glorot_normal_(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Glorot & Bengio 2010: N(0, 2/(fan_in + fan_out))."""
    fan_out = weight.shape[0] * (weight[0][0].numel() if weight.dim() > 2 else 1)
    return weight.normal_(0.0, math.sqrt(2.0 / (fan_in(weight) + fan_out)), generator=generator)


@torch.no_grad()
def orthogonal_(
    weight: torch.Tensor, generator: torch.Generator, gain: float = 1.0
) -> torch.Tensor:
    """A (semi-)orthogonal matrix from the QR of a Gaussian matrix, sign-corrected (Haar)."""
    rows, cols = weight.shape[0], weight[0].numel()
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if rows < cols:
        q = q.T
    weight.copy_((gain * q[:rows, :cols]).reshape(weight.shape).to(weight.dtype))
    return weight
