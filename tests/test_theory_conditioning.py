"""theory.conditioning: condition numbers of W and C, whitening, Lemma 2 and Theorem 3."""

from __future__ import annotations

import math

import pytest
import torch

from gradprobe.tasks import pwl as task
from gradprobe.theory import conditioning as th

K = task.K_KINKS


def _cond(n: int) -> float:
    return th.squared_condition(task.ramp_matrix(n))


@pytest.mark.parametrize("n,expected", [(10, 1.79e4), (100, 1.35e8)])
def test_ramp_condition_matches_reference(n: int, expected: float) -> None:
    assert _cond(n) == pytest.approx(expected, rel=0.01)


def test_window_covariance_reference_and_exponents() -> None:
    """Interior windows reproduce SPEC's 1.55e6 at n = 100; the exponents are ≈ 4 and ≈ 3."""
    interior = th.window_covariance(task.ramp_matrix(100), K, padded=False)
    assert th.condition_number(interior) == pytest.approx(1.55e6, rel=0.01)
    ns = [10, 25, 50, 100, 200]
    assert 3.5 <= th.fitted_exponent(ns, [_cond(n) for n in ns]) <= 4.5
    conds = [th.condition_number(th.window_covariance(task.ramp_matrix(n), K)) for n in ns]
    assert 2.5 <= th.fitted_exponent(ns, conds) <= 3.5


def test_window_covariance_equals_monte_carlo() -> None:
    """The closed form E[x xᵀ] (λ = k/(3n)) against sampled curves' padded windows."""
    n = 12
    g = torch.Generator().manual_seed(1)
    p = task.sample_p(200_000, n, g, dtype=torch.float64)
    x = task.windows(task.curves(p)).reshape(-1, 3)
    mc = x.T @ x / x.shape[0]
    exact = th.window_covariance(task.ramp_matrix(n), K)
    assert torch.allclose(mc, exact, rtol=0.02)


def test_whitening_gives_identity() -> None:
    n = 30
    c = th.window_covariance(task.ramp_matrix(n), K)
    w = th.inverse_sqrt(c)
    assert torch.allclose(w @ c @ w, torch.eye(3, dtype=torch.float64), atol=1e-8)
    g = torch.Generator().manual_seed(2)
    x = task.windows(task.curves(task.sample_p(100_000, n, g, dtype=torch.float64)))
    xw = x.reshape(-1, 3) @ w
    cov = xw.T @ xw / xw.shape[0]
    assert torch.allclose(cov, torch.eye(3, dtype=torch.float64), atol=0.03)
    assert th.condition_number(cov) < 1.1


def test_fitted_exponent_of_power_law() -> None:
    ns = [3.0, 7.0, 20.0]
    assert th.fitted_exponent(ns, [2.5 * m ** 3.3 for m in ns]) == pytest.approx(3.3)


def test_lemma2_matches_population_gradient_descent() -> None:
    """GD on the population loss ½E‖Mf − p‖² from M = 0 at η = 1/(λσ₁²): its relative error
    ‖M_tW − I‖_F/√n equals Lemma 2's formula."""
    n, steps = 6, [0, 1, 5, 50]
    w = task.ramp_matrix(n)
    lam = th.p_variance(n, K)
    eta = 1.0 / (lam * float(th.singular_values(w)[0] ** 2))
    m = torch.zeros(n, n, dtype=torch.float64)
    got = []
    for t in range(steps[-1] + 1):
        if t in steps:
            got.append(float(torch.linalg.norm(m @ w - torch.eye(n, dtype=torch.float64))
                             / math.sqrt(n)))
        m = m - eta * lam * (m @ w - torch.eye(n, dtype=torch.float64)) @ w.T
    assert got == pytest.approx(th.fc_expected_error(w, steps, K), rel=1e-9)


def test_lemma2_expected_sgd_iterate() -> None:
    """The mean of many SGD runs (batch 1, fresh curves) is the expected iterate of Lemma 2."""
    n, t, runs = 4, 30, 4000
    w = task.ramp_matrix(n)
    lam = th.p_variance(n, K)
    eta = 0.5 / (lam * float(th.singular_values(w)[0] ** 2))
    g = torch.Generator().manual_seed(3)
    m = torch.zeros(runs, n, n, dtype=torch.float64)
    for _ in range(t):
        p = task.sample_p(runs, n, g, dtype=torch.float64)
        f = task.curves(p)
        e = torch.einsum("rij,rj->ri", m, f) - p
        m = m - eta * e[:, :, None] * f[:, None, :]
    b = torch.eye(n, dtype=torch.float64) - eta * lam * w.T @ w
    expected = (torch.eye(n, dtype=torch.float64) - torch.linalg.matrix_power(b, t)) @ \
        task.ramp_inverse(n)
    assert torch.allclose(m.mean(0), expected, atol=0.05)


def test_conv_theory_and_theorem3() -> None:
    w = task.ramp_matrix(50)
    assert th.conv_expected_error(w, [0], K)[0] == pytest.approx(1.0, rel=1e-6)
    assert th.conv_expected_error(w, [1], K, whiten=True)[0] == pytest.approx(0.0, abs=1e-9)
    slow = th.conv_expected_error(w, [10_000], K)[0]
    assert 0.1 < slow < 1.0  # still far from solved: cond(C) ≈ 2e5 at n = 50
    assert th.theorem3_iterations(1e8, 1e-2) == pytest.approx(0.5e8 * math.log(100))
