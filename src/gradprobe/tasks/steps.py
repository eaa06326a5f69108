"""A staircase target behind a linear map (Shalev-Shwartz, Shamir, Shammah 2017, ext. §5).

x ~ N(0, 10⁻⁴·I_d), r = v*ᵀx + b*, y = u(r) with the step function u(r) = max{z ∈ Z : z ≤ r} and
Z = b* + OFFSETS (coarse steps every 5 on [−100, 95] and fine ones near 0). Everything is batched
over S independent teachers (seeds): v* (S, d), b* (S,), Z (S, K), inputs (S, N, d).
"""

from __future__ import annotations

import torch

INPUT_STD = 1e-2  # x ~ N(0, 10⁻⁴ I): standard deviation 0.01 (SPEC A8)
_COARSE = [float(z) for z in range(-100, 100, 5)]  # −100, −95, …, 95
_FINE = [-5.0, -4.0, -3.0, -2.0, -1.0, -0.2, 0.0, 0.1, 0.15, 0.175, 1.0, 2.0, 3.0, 4.0, 5.0]
OFFSETS = tuple(sorted(set(_COARSE) | set(_FINE)))  # Z − b*, sorted, 52 values


def step_values(b_star: torch.Tensor) -> torch.Tensor:
    """Z = b* + OFFSETS, (S, K) sorted ascending."""
    off = torch.tensor(OFFSETS, dtype=b_star.dtype, device=b_star.device)
    return b_star[:, None] + off


def sample_teacher(generator: torch.Generator, dim: int = 100,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """One teacher: v* ~ N(0, I_dim) (dim,), b* ~ N(0, 1) (scalar tensor)."""
    v = torch.randn(dim, generator=generator, device=generator.device, dtype=dtype)
    b = torch.randn((), generator=generator, device=generator.device, dtype=dtype)
    return v, b


def sample_inputs(n: int, dim: int, generator: torch.Generator,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n, dim) inputs x ~ N(0, INPUT_STD² I)."""
    x = torch.randn(n, dim, generator=generator, device=generator.device, dtype=dtype)
    return x.mul_(INPUT_STD)


def staircase_index(r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Index k of u(r) = z_k = max{z ∈ Z : z ≤ r}; r (S, N), z (S, K) → (S, N) long.
    Below min Z (never met: it is b* − 100) the lowest step is used."""
    return (torch.searchsorted(z.contiguous(), r.contiguous(), right=True) - 1).clamp_min(0)


def staircase(r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The exact step function u(r), (S, N)."""
    return z.gather(1, staircase_index(r, z))


def smooth_staircase(r: torch.Tensor, z: torch.Tensor, temperature: float) -> torch.Tensor:
    """u_τ(r) = z_0 + Σ_{k≥1} (z_k − z_{k−1})·σ((r − z_k)/τ): each jump becomes a sigmoid."""
    jumps = (z[:, 1:] - z[:, :-1])[:, None, :]  # (S, 1, K−1)
    soft = torch.sigmoid((r[..., None] - z[:, None, 1:]) / temperature)  # (S, N, K−1)
    return z[:, :1] + (jumps * soft).sum(-1)


def straight_through(r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Forward u(r) exactly, backward as if u were the identity (d u/d r := 1)."""
    return r + (staircase(r, z) - r).detach()
