"""A6: the basis-vector affine model, the two teachers and the gradient second moments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradprobe.experiments.noise_decomposition import objective, second_moments, teacher
from gradprobe.nets.basis_affine import BasisAffine
from gradprobe.probes.snr import flatten_grads, per_sample_grads


def test_basis_affine_is_linear_on_one_hot_and_second_moments_match_brute_force() -> None:
    d, k, n = 7, 5, 300
    model = BasisAffine(d, k, torch.Generator().manual_seed(5))
    lin = nn.Linear(d, k)
    with torch.no_grad():
        lin.weight.copy_(model.weight)
        lin.bias.copy_(model.bias)
    idx = torch.tensor([0, 3, 6, 3])
    torch.testing.assert_close(model(idx), lin(torch.eye(d)[idx]))

    labels = torch.randint(0, k, (d,), generator=torch.Generator().manual_seed(6))
    z = teacher(labels[idx], k, "dec", torch.Generator())
    assert torch.equal(z, torch.eye(k)[labels[idx]])
    z = teacher(labels[idx], k, "e2e", torch.Generator().manual_seed(0))
    assert torch.equal(z[torch.arange(4), labels[idx]], torch.ones(4))
    assert set(z.unique().tolist()) <= {-1.0, 1.0}

    mom = second_moments(model, labels, k, n, torch.Generator().manual_seed(7))
    # brute force: full per-sample gradients of the Linear layer on one-hot inputs, same draws
    g = torch.Generator().manual_seed(7)
    idx = torch.randint(0, d, (n,), generator=g)
    for m in ("e2e", "dec"):
        z = teacher(labels[idx], k, m, g)
        grads = per_sample_grads(lin, objective, torch.eye(d)[idx], z)
        brute = float((flatten_grads(grads).double() ** 2).sum(1).mean())
        assert mom[m] == pytest.approx(brute, rel=1e-5)
