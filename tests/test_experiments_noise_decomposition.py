"""A6: the teachers, the objective, and the exact second moments against enumeration."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from gradprobe.experiments.noise_decomposition import objective, teacher
from gradprobe.nets.basis_affine import BasisAffine
from gradprobe.probes.simplex_moments import simplex_second_moments
from gradprobe.probes.snr import flatten_grads, per_sample_grads


def test_teachers() -> None:
    k = 5
    y = torch.tensor([0, 3, 4, 3])
    assert torch.equal(teacher(y, k, "dec", torch.Generator()), torch.eye(k)[y])
    z = teacher(y, k, "e2e", torch.Generator().manual_seed(0))
    assert torch.equal(z[torch.arange(4), y], torch.ones(4))
    assert set(z.unique().tolist()) <= {-1.0, 1.0}


def test_exact_second_moments_equal_enumeration_over_inputs_and_teachers() -> None:
    """Full per-sample gradients of an nn.Linear on one-hot inputs, every input and every
    end-to-end teacher z ∈ {±1}^(k−1) enumerated, give exactly the closed form."""
    d, k = 6, 4
    model = BasisAffine(d, k, torch.Generator().manual_seed(5))
    lin = nn.Linear(d, k).double()
    with torch.no_grad():
        lin.weight.copy_(model.weight)
        lin.bias.copy_(model.bias)
        logits = model(torch.arange(d))
    labels = torch.randint(0, k, (d,), generator=torch.Generator().manual_seed(6))
    got = simplex_second_moments(logits, labels)
    x, zs = [], []
    for i in range(d):
        for signs in itertools.product((-1.0, 1.0), repeat=k - 1):
            z = torch.tensor(signs, dtype=torch.float64)
            zs.append(torch.cat([z[: labels[i]], torch.ones(1, dtype=torch.float64),
                                 z[labels[i]:]]))
            x.append(torch.eye(d, dtype=torch.float64)[i])
    g = flatten_grads(per_sample_grads(lin, objective, torch.stack(x), torch.stack(zs)))
    assert got["e2e"] == pytest.approx(float((g * g).sum(1).mean()), rel=1e-10)
    gd = flatten_grads(per_sample_grads(lin, objective, torch.eye(d, dtype=torch.float64),
                                        torch.eye(k, dtype=torch.float64)[labels]))
    assert got["dec"] == pytest.approx(float((gd * gd).sum(1).mean()), rel=1e-10)
    assert got["ratio"] == pytest.approx(got["e2e"] / got["dec"])


def test_ratio_is_k_at_a_uniform_softmax() -> None:
    for k in (2, 10, 1000):
        r = simplex_second_moments(torch.zeros(7, k), torch.arange(7) % k)
        assert r["ratio"] == pytest.approx(k, rel=1e-12)
