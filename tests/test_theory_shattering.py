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
