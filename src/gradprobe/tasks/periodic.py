"""Linear-periodic targets x ↦ ψ(v*ᵀx), ‖v*‖ = r, x ~ N(0, I_d) (Shamir 2016; Shalev-Shwartz et
al. 2017, Thm 2; SPEC A3)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

PERIODIC: dict[str, Callable[[Tensor], Tensor]] = {
    "cos": torch.cos,
    "sin": torch.sin,
    # a 2π-periodic triangle wave with values in [−1, 1]
    "triangle": lambda z: 1.0 - 2.0 * torch.abs(torch.remainder(z / math.pi, 2.0) - 1.0),
}


def sample_directions(n_targets: int, d: int, r: float, generator: torch.Generator,
                      device: torch.device | str = "cpu") -> Tensor:
    """v*_t = r·g_t/‖g_t‖ with g_t ~ N(0, I_d): uniform on the sphere of radius r, (T, d)."""
    g = torch.randn(n_targets, d, generator=generator, device=device)
    return r * g / g.norm(dim=1, keepdim=True)


def sample_gaussian_inputs(n: int, d: int, generator: torch.Generator,
                           device: torch.device | str = "cpu") -> Tensor:
    """x ~ N(0, I_d), shape (n, d)."""
    return torch.randn(n, d, generator=generator, device=device)


def periodic_targets(directions: Tensor, psi: str = "cos") -> Callable[[Tensor], Tensor]:
    """The family {x ↦ ψ(v_tᵀx)} as a function x (m, d) → (T, m)."""
    if psi not in PERIODIC:
        raise ValueError(f"unknown periodic function {psi!r}; choose one of {', '.join(PERIODIC)}")
    f = PERIODIC[psi]

    def targets(x: Tensor) -> Tensor:
        return f(directions.to(x.dtype) @ x.T)

    return targets
