"""BasisAffine is nn.Linear on one-hot inputs; the stacked version trains each seed alone."""

from __future__ import annotations

import torch
from torch import nn

from gradprobe.experiments.noise_decomposition import objective
from gradprobe.nets.basis_affine import BasisAffine, StackedBasisAffine


def test_basis_affine_is_linear_on_one_hot() -> None:
    d, k = 7, 5
    model = BasisAffine(d, k, torch.Generator().manual_seed(5))
    lin = nn.Linear(d, k)
    with torch.no_grad():
        lin.weight.copy_(model.weight)
        lin.bias.copy_(model.bias)
    idx = torch.tensor([0, 3, 6, 3])
    torch.testing.assert_close(model(idx), lin(torch.eye(d)[idx]))


def test_stacked_adam_follows_each_seed_trained_alone() -> None:
    d, k, S, steps = 9, 4, 3, 5
    alone = [BasisAffine(d, k, torch.Generator().manual_seed(s)) for s in range(S)]
    stacked = StackedBasisAffine(alone)
    opt = torch.optim.Adam(stacked.parameters(), lr=0.1, betas=(0.9, 0.99), eps=1e-5,
                           fused=True)
    opts = [torch.optim.Adam(m.parameters(), lr=0.1, betas=(0.9, 0.99), eps=1e-5) for m in alone]
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, d, (S, 6), generator=g)
        z = torch.randn(S, 6, k, generator=g)
        opt.zero_grad()
        objective(stacked(idx), z).sum().backward()
        opt.step()
        for s, (m, o) in enumerate(zip(alone, opts)):
            o.zero_grad()
            objective(m(idx[s]), z[s]).backward()
            o.step()
    for s, m in enumerate(alone):
        torch.testing.assert_close(stacked.weight_t[s], m.weight.detach().t(), rtol=1e-5,
                                   atol=1e-6)
        torch.testing.assert_close(stacked.bias[s], m.bias.detach(), rtol=1e-5, atol=1e-6)
