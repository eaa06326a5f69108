"""N2 ∘ N1 on tuples of vectors (SPEC D3, A9: Shalev-Shwartz et al. 2017, §3, Theorem 3).

The A4 composition with the image net N1 replaced by a linear score, as Theorem 3 assumes the
labels of single parts are realised by a linear predictor: N1(x_l) = ⟨w₁, x_l⟩ + b₁ on each of
the k parts x_l ∈ R^d (shared weights), then A4's N2 (sigmoid → FC 100 ReLU → FC 1) on the k
scores. N2 couples the parts, which Theorem 3's variance needs: a predictor additive in the
parts has exactly zero variance across the targets ∏_l sign(⟨u, x_l⟩) for k ≥ 2.
Weights truncated normal with std 1/sqrt(fan_in), biases 0 (A4's init).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradprobe.nets.tuple_nets import N2, init_trunc_normal_


class VectorTupleNet(nn.Module):
    """Tuples (n, k, d) → outputs (n,): N2 on the k scores of one shared linear N1."""

    def __init__(self, d: int, k: int, generator: torch.Generator, hidden: int = 100) -> None:
        super().__init__()
        self.n1 = nn.Linear(d, 1)
        self.n2 = N2(k, hidden)
        init_trunc_normal_(self, generator)

    def forward(self, x: Tensor) -> Tensor:
        return self.n2(self.n1(x).squeeze(-1))

    @torch.no_grad()
    def per_sample_grads(self, x: Tensor) -> Tensor:
        """∂p(x_i)/∂w for every tuple, (n, P) in named_parameters() order, in closed form
        (backpropagation written out per sample; O(n·P), no vmap)."""
        w1, b1 = self.n1.weight[0], self.n1.bias[0]
        fc1, fc2 = self.n2.fc1, self.n2.fc2
        sig = torch.sigmoid(x @ w1 + b1)  # (n, k)
        z = sig @ fc1.weight.T + fc1.bias  # (n, h)
        a = torch.relu(z)
        dz = fc2.weight[0] * (z > 0).to(x.dtype)  # ∂p/∂z (n, h)
        ds = (dz @ fc1.weight) * sig * (1 - sig)  # ∂p/∂score (n, k)
        n = x.shape[0]
        return torch.cat([
            torch.einsum("nk,nkd->nd", ds, x), ds.sum(1, keepdim=True),  # N1
            (dz[:, :, None] * sig[:, None, :]).reshape(n, -1), dz,  # N2 fc1
            a, torch.ones(n, 1, dtype=x.dtype, device=x.device),  # N2 fc2
        ], 1)
