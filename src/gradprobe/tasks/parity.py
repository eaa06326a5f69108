"""Random parities (Shalev-Shwartz, Shamir & Shammah 2017, §2.1, Fig. 1; SPEC A1–A2).

v* uniform in {0,1}^d, x uniform in {0,1}^d, y = (-1)^<x, v*>: data only (the net is
gradprobe.nets.parity.parity_net).
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_secret(d: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """v* uniform in {0,1}^d, shape (d,), float."""
    return torch.randint(0, 2, (d,), generator=generator, device=device).float()


def sample_inputs(shape: tuple[int, ...], d: int, generator: torch.Generator,
                  device: torch.device | str = "cpu") -> Tensor:
    """x uniform in {0,1}^d, shape (*shape, d), float."""
    return torch.randint(0, 2, (*shape, d), generator=generator, device=device).float()


def parity_labels(x: Tensor, v: Tensor) -> Tensor:
    """y = (-1)^<x, v> for x (..., d) in {0,1} and v (d,) or broadcastable (..., d); shape (...)."""
    bits = (x * v).sum(-1).remainder(2)
    return 1.0 - 2.0 * bits


def all_inputs(d: int, device: torch.device | str = "cpu") -> Tensor:
    """Every x in {0,1}^d, shape (2^d, d); row i holds the binary digits of i (LSB first)."""
    i = torch.arange(2**d, device=device)
    return ((i.unsqueeze(1) >> torch.arange(d, device=device)) & 1).float()


def parity_matrix(d: int, secrets: Tensor | None = None,
                  device: torch.device | str = "cpu") -> Tensor:
    """H[t, i] = (-1)^<x_i, v_t> over all 2^d inputs x_i (all_inputs order).

    secrets: (T, d) in {0,1}, default every v in {0,1}^d (T = 2^d, a Walsh–Hadamard matrix,
    H Hᵀ = 2^d I). Returns (T, 2^d) float.
    """
    x = all_inputs(d, device)
    v = all_inputs(d, device) if secrets is None else secrets.to(device).float()
    bits = (v @ x.T).remainder(2)
    return 1.0 - 2.0 * bits
