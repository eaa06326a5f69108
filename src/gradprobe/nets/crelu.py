"""Concatenated rectifiers and the looks-linear initialisation (Balduzzi et al. 2017, §6).

CReLU(x) = [ρ(x), ρ(−x)] (Shang et al. 2016) doubles the channels. A layer that reads a CReLU
output with mirrored weights [W, −W] computes W ρ(x) − W ρ(−x) = W x: the whole net is linear at
initialisation ("looks linear", LL) and has no shattered gradients; it stops being linear as soon
as an update makes the two blocks differ. W is orthogonal (Saxe et al. 2014); for a k×k conv
kernel it is "delta-orthogonal": zero everywhere but the centre tap, which holds a matrix with
orthonormal columns (paper §6, "Orthogonal convolutions"), used with stride 1 and zero padding
(a stride-2 conv with such a kernel subsamples, still linearly).

PReLU(x) = x if x > 0 else a·x with a = 1 at initialisation is the other LL variant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradprobe.nets.init import orthogonal_


class CReLU(nn.Module):
    """x (n, C, ...) → [ρ(x), ρ(−x)] (n, 2C, ...): positive parts first, then negative parts."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([torch.relu(x), torch.relu(-x)], dim=1)


def prelu_ll(channels: int) -> nn.PReLU:
    """PReLU with one slope per channel, a = 1 at initialisation (the identity: LL variant)."""
    return nn.PReLU(num_parameters=channels, init=1.0)


@torch.no_grad()
def delta_orthogonal_(weight: Tensor, generator: torch.Generator, gain: float = 1.0) -> Tensor:
    """Conv kernel (out, in, k, k): zeros except the centre tap, a (semi-)orthogonal out×in
    matrix H (orthonormal columns when out ≥ in, so ‖conv(x)‖ = ‖x‖ at stride 1 with zero
    padding). A 2-D weight (Linear) gets a plain (semi-)orthogonal matrix.
    """
    if weight.dim() == 2:
        return orthogonal_(weight, generator, gain=gain)
    if weight.dim() != 4:
        raise ValueError(f"delta_orthogonal_ expects a (out, in, k, k) kernel, got {weight.shape}")
    kh, kw = weight.shape[2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"delta-orthogonal kernels need odd sizes, got {kh}×{kw}")
    h = torch.empty(weight.shape[0], weight.shape[1], dtype=weight.dtype)
    orthogonal_(h, generator, gain=gain)
    weight.zero_()
    weight[:, :, kh // 2, kw // 2] = h.to(weight.device)
    return weight


@torch.no_grad()
def looks_linear_(weight: Tensor, generator: torch.Generator, gain: float = 1.0) -> Tensor:
    """Weight reading a CReLU output (dim 1 = [positive half, negative half]) → [W, −W].

    W is delta-orthogonal for conv kernels and orthogonal for Linear weights, so that
    layer(CReLU(x)) = W x. For a Linear layer after flatten, the channel-major order keeps the
    halves contiguous: features [0, F/2) come from ρ(x), [F/2, F) from ρ(−x).
    """
    if weight.shape[1] % 2:
        raise ValueError(f"looks-linear weights need an even input dim, got {weight.shape[1]}")
    half = weight.shape[1] // 2
    w = torch.empty((weight.shape[0], half) + tuple(weight.shape[2:]), dtype=weight.dtype)
    delta_orthogonal_(w, generator, gain=gain)
    weight.copy_(torch.cat([w, -w], dim=1).to(weight.device))
    return weight
