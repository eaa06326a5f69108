"""k-tuples of standard Gaussian vectors and the targets ∏_l sign(⟨u, x_l⟩) (Shalev-Shwartz et al.
2017, §3, Theorem 3; SPEC D3). Directions u come from tasks.periodic.sample_directions (r = 1)."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_tuples(n: int, k: int, d: int, generator: torch.Generator,
                  device: torch.device | str = "cpu") -> Tensor:
    """x_il i.i.d. N(0, I_d): shape (n, k, d)."""
    return torch.randn(n, k, d, generator=generator, device=device)


def product_sign_targets(u: Tensor, x: Tensor) -> Tensor:
    """h_t(x_i) = ∏_l sign(⟨u_t, x_il⟩) for u (T, d), x (n, k, d): (T, n) in {±1}.

    E_x h_u(x) = 0 for every u (each factor has mean 0 and the parts are independent).
    """
    return torch.sign(torch.einsum("td,nkd->tnk", u.to(x.dtype), x)).prod(-1)
