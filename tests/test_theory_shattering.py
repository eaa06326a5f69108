"""Closed forms of Balduzzi et al. 2017 (theory/shattering.py) and their limits."""

from __future__ import annotations

import math

import pytest

from gradprobe.theory import shattering as th


def test_feedforward_and_resnet_without_bn():
    assert [th.feedforward_correlation(L) for L in (0, 1, 4)] == [1.0, 0.5, 1 / 16]
    assert th.feedforward_variance(30) == 1.0
    assert th.resnet_correlation(3) == pytest.approx(0.75**3)
    assert th.resnet_variance(5) == 2.0**5
    # α = 1/√2 rescaling keeps the variance at 1 and the correlation at (3/4)^L
    assert th.resnet_variance(7, alpha=1 / math.sqrt(2)) == pytest.approx(1.0)
    assert th.resnet_correlation(0) == 1.0


def test_resnet_bn_product():
    # the variance telescopes: ∏ (1 + β²/s_l²) = s_{L+1}² = 1 + Lβ²
    for beta in (0.1, 0.5, 1.0):
        for L in (1, 7, 50):
            assert th.resnet_bn_variance(L, beta) == pytest.approx(1 + L * beta**2)
    assert th.resnet_bn_correlation(1, 1.0) == pytest.approx(1.5 / 2)
    # the paper's numbers: 100 layers → 0.71 (β = 0.1), 0.11 (β = 1)
    assert th.resnet_bn_correlation(100, 0.1) == pytest.approx(0.71, abs=0.01)
    assert th.resnet_bn_correlation(100, 1.0) == pytest.approx(0.11, abs=0.01)
    assert th.resnet_bn_correlation_approx(100, 0.1) == pytest.approx(0.709, abs=1e-3)
    # sub-exponential decay: ~ 1/sqrt(L) for β = 1 (ratio at 4L vs L → 1/2)
    r = th.resnet_bn_correlation(4000, 1.0) / th.resnet_bn_correlation(1000, 1.0)
    assert r == pytest.approx(0.5, abs=0.01)
    # β → 0: correlation → 1
    assert th.resnet_bn_correlation(50, 1e-4) == pytest.approx(1.0, abs=1e-6)


def test_highway_limit():
    assert th.highway_variance(10) == 1.0
    assert th.highway_correlation(1) == pytest.approx(0.5)
    assert th.highway_correlation(10**6) == pytest.approx(th.highway_limit(), abs=1e-6)
    assert th.highway_limit() == pytest.approx(0.6065, abs=1e-4)
    vals = [th.highway_correlation(L) for L in (2, 4, 8, 16, 32, 64)]
    assert all(a < b for a, b in zip(vals, vals[1:])) and vals[-1] < th.highway_limit()
    # γ1² = 0 is a feed-forward net: 2^−L; γ1² = 1 is the identity: 1
    assert th.highway_correlation(6, gamma1_sq=0.0) == th.feedforward_correlation(6)
    assert th.highway_correlation(6, gamma1_sq=1.0) == 1.0


def test_coactivation_from_activation():
    assert th.coactivation_from_activation(0.5, 10**6) == pytest.approx(0.25, abs=1e-6)
    assert th.coactivation_from_activation(1.0, 7) == 1.0
    assert th.coactivation_from_activation(1 / 7, 7) == 0.0


def test_relu_moments_against_closed_forms_and_monte_carlo():
    assert th.relu_variance() == pytest.approx(0.5 - 1 / (2 * math.pi))
    assert th.he_branch_variance() == pytest.approx(1 - 1 / math.pi)  # 0.682
    assert th.relu_kernel(0.0) == pytest.approx(1 / math.pi)
    assert th.relu_kernel(1.0) == pytest.approx(1.0)
    assert th.coactivation(0.0) == 0.25 and th.coactivation(1.0) == pytest.approx(0.5)
    import torch

    g = torch.Generator().manual_seed(0)
    u, e = torch.randn(2, 400_000, generator=g, dtype=torch.float64)
    rho = 0.6
    v = rho * u + math.sqrt(1 - rho**2) * e
    assert float(((u > 0) & (v > 0)).double().mean()) == pytest.approx(th.coactivation(rho),
                                                                         abs=3e-3)
    ratio = float((u.clamp(min=0) * v.clamp(min=0)).mean() / (u.clamp(min=0) ** 2).mean())
    assert ratio == pytest.approx(th.relu_kernel(rho), abs=5e-3)
    assert float(u.clamp(min=0).var()) == pytest.approx(th.relu_variance(), abs=3e-3)


def test_normalised_chain_recovers_the_theorems():
    """With E[1/s_l²] = 1/(1 + (l−1)β²) the chain is Thm 3; α = 0 (feed-forward) gives 2^−L."""
    for beta in (0.1, 1.0):
        inv = [1 / th.bn_scale_sq(l, beta) for l in range(1, 9)]
        assert th.normalised_variance(inv, 1.0, beta) == pytest.approx(
            th.resnet_bn_variance(8, beta))
        assert th.normalised_correlation(inv, 1.0, beta) == pytest.approx(
            th.resnet_bn_correlation(8, beta))
        s = th.norm_scales(8, 1.0, beta)
        assert s == pytest.approx([th.bn_scale_sq(l, beta) for l in range(1, 9)])
    assert th.normalised_correlation([0.3, 1.7, 2.0], 0.0, 1.0) == pytest.approx(1 / 8)
    assert th.normalised_variance([0.5, 2.0, 3.0], 0.0, 1.0) == pytest.approx(3.0)


def test_bn_kappa_corrections():
    k = th.he_branch_variance()
    assert th.feedforward_bn_variance_ratio(1) == 1.0
    assert th.feedforward_bn_variance_ratio(5) == pytest.approx(k ** -4)  # (1/0.68)^(L−1)
    # κ < 1: BN divides by less, so the variance grows faster and R falls faster than Thm 3
    assert th.resnet_bn_variance(10, 1.0, k) > th.resnet_bn_variance(10, 1.0)
    assert th.resnet_bn_correlation(10, 1.0, k) < th.resnet_bn_correlation(10, 1.0)
    assert th.resnet_bn_correlation(10, 1.0, 1.0) == th.resnet_bn_correlation(10, 1.0)
    # highway + BN: the inputs' batch variance falls from 1 towards κ; at κ = 1 it is Cor. 1
    s = th.highway_bn_scales(50)
    assert s[0] == 1.0 and all(a > b > k for a, b in zip(s, s[1:]))
    assert th.highway_bn_correlation(16, kappa=1.0) == pytest.approx(th.highway_correlation(16))
    assert th.highway_bn_correlation(16) < th.highway_correlation(16)


def test_tracked_correlations():
    """ρ_0 = 0 gives the theorems at L = 1; the correlation then grows, so R lies above them;
    fully correlated inputs (ρ = 1) have R = 1."""
    assert th.feedforward_correlation_tracked(1) == 0.5
    assert th.resnet_correlation_tracked(1) == 0.75
    for L in (2, 4, 8):
        assert th.feedforward_correlation_tracked(L) > th.feedforward_correlation(L)
        assert th.resnet_correlation_tracked(L) > th.resnet_correlation(L)
    assert th.feedforward_correlation_tracked(3, rho0=1.0) == pytest.approx(1.0)
    assert th.resnet_correlation_tracked(3, rho0=1.0) == pytest.approx(1.0)
    # second layer by hand: ρ_1 = 1/π, co-activation ¼ + arcsin(1/π)/(2π)
    q = 0.25 + math.asin(1 / math.pi) / (2 * math.pi)
    assert th.feedforward_correlation_tracked(2) == pytest.approx(0.5 * 2 * q)
