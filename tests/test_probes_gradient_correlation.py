"""probes/gradient_correlation.py: pooled R, C and the jackknife against direct formulas."""

from __future__ import annotations

import math

import pytest
import torch

from gradprobe.probes.gradient_correlation import correlation_stats, pair_moments, ratio_jackknife


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pair_moments_match_a_double_loop():
    G = torch.randn(3, 5, 4, generator=_g(0), dtype=torch.float64)
    num, den = pair_moments(G)
    for k in range(3):
        pairs = [float(G[k, i] @ G[k, j]) for i in range(5) for j in range(5) if i != j]
        assert float(num[k]) == pytest.approx(sum(pairs) / len(pairs), rel=1e-12)
        assert float(den[k]) == pytest.approx(float((G[k] ** 2).sum()) / 5, rel=1e-12)


def test_correlation_of_a_known_gaussian_model():
    """r_i = √ρ·z + √(1−ρ)·e_i (z shared by the inputs of one net and neuron): R = ρ, C = 1."""
    rho, K, B, N = 0.3, 64, 16, 128
    g = _g(1)
    z = torch.randn(K, 1, N, generator=g, dtype=torch.float64)
    e = torch.randn(K, B, N, generator=g, dtype=torch.float64)
    st = correlation_stats(math.sqrt(rho) * z + math.sqrt(1 - rho) * e)
    assert abs(st["R"] - rho) < 4 * st["R_se"] and st["R_se"] < 0.02
    assert st["C"] == pytest.approx(1.0, abs=0.02)
    assert len(st["R_per_net"]) == K == len(st["C_per_net"])


def test_ratio_jackknife_against_leave_one_out_by_hand():
    num = torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    den = torch.tensor([2.0, 3.0, 1.0, 2.0], dtype=torch.float64)
    value, se = ratio_jackknife(num, den, math.log2)
    assert value == pytest.approx(math.log2(5.0 / 8.0))
    loo = [math.log2((5.0 - num[k].item()) / (8.0 - den[k].item())) for k in range(4)]
    mean = sum(loo) / 4
    assert se == pytest.approx(math.sqrt(3 / 4 * sum((v - mean) ** 2 for v in loo)))
    # a ratio whose leave-one-out crosses zero has no log: NaN, never an exception
    assert math.isnan(ratio_jackknife(torch.tensor([1.0, -2.0]), torch.ones(2), math.log2)[1])
    # equal weights: the jackknife of the pooled mean is the usual standard error s/√K
    x = torch.randn(12, generator=_g(2), dtype=torch.float64)
    v, s = ratio_jackknife(x, torch.ones(12, dtype=torch.float64))
    assert v == pytest.approx(float(x.mean()))
    assert s == pytest.approx(float(x.std()) / math.sqrt(12), rel=1e-10)
