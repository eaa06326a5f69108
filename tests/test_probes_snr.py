"""The gradient SNR probe against brute force and closed forms (SPEC A5)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradprobe.probes.snr import flatten_grads, gradient_snr, per_sample_grads, snr_from_samples


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 1))


def _mse(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out.squeeze(-1) - t) ** 2).mean()


def test_per_sample_grads_match_a_loop() -> None:
    model = _mlp()
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(9, 5, generator=g), torch.randn(9, generator=g)
    got = per_sample_grads(model, _mse, x, t)
    for i in range(9):
        model.zero_grad()
        _mse(model(x[i : i + 1]), t[i : i + 1]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(got[name][i], p.grad, rtol=1e-5, atol=1e-6)


def test_parameter_subset_and_unknown_names() -> None:
    model = _mlp()
    x, t = torch.randn(4, 5), torch.randn(4)
    got = per_sample_grads(model, _mse, x, t, params=["2.weight"])
    assert list(got) == ["2.weight"] and got["2.weight"].shape == (4, 1, 7)
    full = per_sample_grads(model, _mse, x, t)
    torch.testing.assert_close(got["2.weight"], full["2.weight"])
    with pytest.raises(ValueError, match="unknown parameter"):
        per_sample_grads(model, _mse, x, t, params=["nope"])


def test_linear_regression_closed_form() -> None:
    """ℓ = ½(θᵀx − y)², x ~ N(0, I_p), y = w*ᵀx + σε: with δ = θ − w*, E ĝ = δ and
    Cov ĝ = ‖δ‖² I + δδᵀ + σ² I, so signal = ‖δ‖², noise = (p + 1)‖δ‖² + pσ²."""
    p, n, sigma = 6, 40000, 0.5
    g = torch.Generator().manual_seed(2)
    model = nn.Linear(p, 1, bias=False)
    w_star = torch.randn(p, generator=g)
    delta = 0.3 * torch.randn(p, generator=g)
    with torch.no_grad():
        model.weight.copy_((w_star + delta)[None])
    x = torch.randn(n, p, generator=g)
    y = x @ w_star + sigma * torch.randn(n, generator=g)
    r = gradient_snr(model, _mse, (x, y), params=["weight"])
    d2 = float(delta @ delta)
    signal, noise = d2, (p + 1) * d2 + p * sigma**2
    assert r.n == n
    assert abs(r.signal - signal) <= 4 * r.signal_se
    assert abs(r.noise - noise) <= 4 * r.noise_se
    assert r.signal_se < 0.1 * signal and r.noise_se < 0.05 * noise  # well resolved
    assert not r.below_noise
    assert r.snr == pytest.approx(signal / noise, rel=0.15)


def test_standard_errors_are_calibrated_and_signal_is_unbiased() -> None:
    """Over many draws, the spread of the estimates matches their reported standard errors,
    and with zero mean the unbiased signal averages 0 (the plug-in ‖ḡ‖² would average tr Σ/n)."""
    g = torch.Generator().manual_seed(3)
    p, n, reps = 20, 200, 400
    scales = torch.linspace(0.5, 2.0, p)
    for mu_norm in (0.0, 0.6):
        mu = torch.zeros(p)
        mu[0] = mu_norm
        G = mu + scales * torch.randn(reps, n, p, generator=g)
        res = [snr_from_samples(G[r]) for r in range(reps)]
        sig = torch.tensor([r.signal for r in res], dtype=torch.float64)
        noi = torch.tensor([r.noise for r in res], dtype=torch.float64)
        se = torch.tensor([r.signal_se for r in res], dtype=torch.float64)
        nse = torch.tensor([r.noise_se for r in res], dtype=torch.float64)
        tr = float((scales**2).sum())
        assert abs(float(sig.mean()) - mu_norm**2) < 4 * float(sig.std()) / math.sqrt(reps)
        assert abs(float(noi.mean()) - tr) < 4 * float(noi.std()) / math.sqrt(reps)
        assert float(se.mean()) == pytest.approx(float(sig.std()), rel=0.2)
        assert float(nse.mean()) == pytest.approx(float(noi.std()), rel=0.2)
        below = sum(r.below_noise for r in res) / reps
        if mu_norm == 0.0:
            assert below > 0.9  # a signal of zero is reported as unresolved
        else:
            assert below < 0.05


def test_snr_from_samples_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        snr_from_samples(torch.randn(1, 3))
    with pytest.raises(ValueError):
        snr_from_samples(torch.randn(5))


def test_flatten_grads_order() -> None:
    grads = {"a": torch.ones(3, 2, 2), "b": torch.zeros(3, 1)}
    flat = flatten_grads(grads)
    assert flat.shape == (3, 5) and flat[:, :4].eq(1).all() and flat[:, 4].eq(0).all()
