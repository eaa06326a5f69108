"""Mean-field theory (theory/meanfield.py) against closed forms and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradprobe.theory import meanfield as mf


def test_gauss_hermite_moments() -> None:
    z, w = mf.gauss_hermite(101)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert (w * z**2).sum() == pytest.approx(1.0, abs=1e-10)
    assert (w * z**4).sum() == pytest.approx(3.0, abs=1e-9)


@pytest.mark.parametrize("sw2", [0.5, 0.9, 1.0])
def test_tanh_no_bias_ordered_phase_has_q_star_zero(sw2: float) -> None:
    """tanh, σ_b = 0: E tanh(√q z)² < q for q > 0, so σ_w² ≤ 1 gives q* = 0 and χ₁ = σ_w²."""
    assert mf.fixed_point_q(sw2, 0.0) == 0.0
    assert mf.chi1(sw2, 0.0) == pytest.approx(sw2, rel=1e-12)


def test_tanh_no_bias_critical_point_is_one() -> None:
    assert mf.critical_sw2(0.0) == pytest.approx(1.0, abs=1e-6)
    assert mf.fixed_point_q(1.2, 0.0) > 0.05  # chaotic side: a nonzero fixed point
    assert mf.chi1(1.2, 0.0) > 1.0


def test_linear_net_closed_forms() -> None:
    """φ = id: q_l = σ_w² q + σ_b², χ₁ = σ_w², q* = σ_b²/(1 − σ_w²) below σ_w² = 1."""
    assert float(mf.chi(0.7, 1.3, "linear")) == pytest.approx(1.3, rel=1e-12)
    assert mf.fixed_point_q(0.5, 0.1, "linear") == pytest.approx(0.2, rel=1e-9)
    assert mf.critical_sw2(0.0, "linear") == pytest.approx(1.0, abs=1e-6)


def test_fixed_point_is_a_fixed_point_and_the_map_converges_to_it() -> None:
    q = mf.fixed_point_q(1.5, 0.05)
    assert float(mf.length_step(q, 1.5, 0.05)) == pytest.approx(q, rel=1e-10)
    assert mf.length_map(1.0, 1.5, 0.05, 300)[-1] == pytest.approx(q, rel=1e-8)


def test_length_map_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal(2_000_000)
    q = 0.8
    mc = 1.3 * np.mean(np.tanh(math.sqrt(q) * z) ** 2) + 0.1
    assert float(mf.length_step(q, 1.3, 0.1)) == pytest.approx(mc, abs=3e-4)


def test_erf_correlation_step_matches_closed_form() -> None:
    """E erf(u₁)erf(u₂) = (2/π) arcsin(2qc / (1 + 2q)) (Williams 1997)."""
    q, c, sw2, sb2 = 0.9, 0.6, 1.5, 0.02
    q_next = float(mf.length_step(q, sw2, sb2, "erf"))
    assert q_next == pytest.approx(sw2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + sb2,
                                   rel=1e-8)
    exact = 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q))
    got = mf.correlation_step(c, q, q_next, sw2, sb2, "erf")
    assert got == pytest.approx((sw2 * exact + sb2) / q_next, abs=1e-8)


def test_ordered_phase_depth_scale_is_minus_one_over_log_chi1() -> None:
    """Ordered phase: c* = 1, so χ_c = χ₁ and ξ_c = −1/ln χ₁ (Schoenholz et al. 2017, §3)."""
    sw2, sb2 = 1.2, 0.2
    assert mf.fixed_point_c(sw2, sb2) == pytest.approx(1.0, abs=1e-6)
    assert mf.depth_scale(sw2, sb2) == pytest.approx(-1 / math.log(mf.chi1(sw2, sb2)), rel=1e-4)
    assert mf.fixed_point_c(2.5, 0.0) < 0.5  # chaotic, σ_b = 0: correlations decay toward 0


def test_layerwise_slope_reduces_to_fixed_point_far_from_criticality() -> None:
    for sw2 in (0.7, 1.6):
        assert mf.layerwise_slope(1.0, sw2, 0.0, 101, 10, 100) == pytest.approx(
            mf.fixed_point_slope(sw2, 0.0), abs=4e-3)


def test_fit_slope_recovers_a_line() -> None:
    logs = 0.03 * (20 - np.arange(1, 21))  # log‖δ_l‖ grows by 0.03 per step toward the input
    assert float(mf.fit_slope(logs, 2, 15)) == pytest.approx(0.03, abs=1e-12)


def test_crossing() -> None:
    assert mf.crossing([1.0, 2.0, 3.0], [-1.0, -0.5, 0.5]) == pytest.approx(2.5)
    assert math.isnan(mf.crossing([1.0, 2.0], [1.0, 2.0]))
