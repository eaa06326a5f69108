"""Random parities (Shalev-Shwartz, Shamir & Shammah 2017, §2.1, Fig. 1; SPEC A1–A2).

v* uniform in {0,1}^d, x uniform in {0,1}^d, y = (-1)^<x, v*>. The net is
Linear(d, 10d) → ReLU → Linear(10d, 1), truncated-normal init with std 1/sqrt(fan_in), zero
biases; the loss is the hinge max(0, 1 − y·ŷ).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gradprobe.nets.init import trunc_normal_fan_in_


def parity_net(d: int, generator: torch.Generator, width_factor: int = 10) -> nn.Sequential:
    """Linear(d, 10d) → ReLU → Linear(10d, 1); weights trunc-normal std 1/sqrt(fan_in), bias 0."""
    net = nn.Sequential(nn.Linear(d, width_factor * d), nn.ReLU(), nn.Linear(width_factor * d, 1))
    for layer in (net[0], net[2]):
        trunc_normal_fan_in_(layer.weight, generator)
        nn.init.zeros_(layer.bias)
    return net


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


def stratified_secrets(d: int, budget: int, generator: torch.Generator,
                       enumerate_max: int | None = None,
                       device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """About `budget` secrets v, stratified by Hamming weight |v|, with their probability weights.

    Weight class k holds C(d, k) of the 2^d parities (probability C(d, k)/2^d). Classes with at
    most `enumerate_max` members (default budget // 8) are enumerated exactly; the others get
    budget shares proportional to their probability (≥ 2 each), drawn uniformly within the class.
    The low-degree parities carry most of the gradient variance (a net's gradient is a smooth
    function of x, whose Walsh spectrum sits at low degree), so plain uniform sampling of v is
    unbiased but heavy-tailed; stratifying removes that. Returns secrets (T, d) float in {0, 1}
    and weights (T,) summing to 1.
    """
    from itertools import combinations

    cap = budget // 8 if enumerate_max is None else enumerate_max
    sizes = [math.comb(d, k) for k in range(d + 1)]
    exact = [k for k in range(d + 1) if sizes[k] <= cap]
    sampled = [k for k in range(d + 1) if k not in exact]
    left = max(budget - sum(sizes[k] for k in exact), 2 * len(sampled))
    mass = sum(sizes[k] for k in sampled)
    rows, weights = [], []
    for k in range(d + 1):
        p_k = sizes[k] / 2.0**d
        if k in exact:
            v = torch.zeros(sizes[k], d)
            for i, idx in enumerate(combinations(range(d), k)):
                v[i, list(idx)] = 1.0
        else:
            n_k = max(2, round(left * sizes[k] / mass))
            order = torch.rand(n_k, d, generator=generator).argsort(dim=1)[:, :k]
            v = torch.zeros(n_k, d).scatter_(1, order, 1.0)
        rows.append(v)
        weights.append(torch.full((v.shape[0],), p_k / v.shape[0], dtype=torch.float64))
    return torch.cat(rows).to(device), torch.cat(weights).to(device)
