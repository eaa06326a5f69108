"""Shattering probes: input gradients, ACF, covariance image, effective rank, frozen norms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradprobe.nets.mlp import MLP
from gradprobe.nets.norm import FrozenNorm, calibrate, unfreeze
from gradprobe.nets.resnet import ResNet
from gradprobe.probes.shattering import (
    autocorrelation,
    covariance_image,
    effective_rank,
    grid,
    input_gradients,
    relative_effective_rank,
    segment,
    shattering,
)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _finite_diff(f, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central differences of the per-sample scalar f (n,) for every input coordinate."""
    flat = x.reshape(x.shape[0], -1)
    out = torch.empty_like(flat)
    for j in range(flat.shape[1]):
        e = torch.zeros_like(flat)
        e[:, j] = eps
        out[:, j] = (f((flat + e).reshape(x.shape)) - f((flat - e).reshape(x.shape))) / (2 * eps)
    return out.reshape(x.shape)


@pytest.mark.parametrize("shape", [(7, 5), (4, 2, 3, 3)])
def test_input_gradients_match_finite_differences(shape):
    g = _g(1)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    if len(shape) == 2:
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    else:
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Flatten(),
                              nn.Linear(36, 2)).double()
    def out_fn(o):
        return (o ** 2).sum(1)
    grads = input_gradients(model, x, out_fn)
    assert grads.shape == x.shape
    with torch.no_grad():
        fd = _finite_diff(lambda z: out_fn(model(z)), x)
    torch.testing.assert_close(grads, fd, rtol=1e-6, atol=1e-7)


def test_input_gradients_rejects_non_scalar_output_fn():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="one scalar per sample"):
        input_gradients(model, torch.randn(4, 3), output_fn=lambda o: o)


def test_frozen_norm_per_point_derivatives_match_autograd_on_whole_grid():
    """One backward of f.sum() with statistics computed over the grid and frozen gives, at
    every grid point, the derivative of the fixed function the grid defines: the same as
    autograd on that point alone (frozen mode) and as finite differences."""
    x = grid(-2, 2, 64, dtype=torch.float64)
    for model in (
        MLP([1, 16, 16, 16, 1], "relu", norm="center", norm_from=2, bias_std=1.0,
            generator=_g(2)).double(),
        ResNet(16, 3, beta=0.5, norm="bn", in_features=1, out_features=1, generator=_g(3)).double(),
    ):
        unfreeze(model)
        fast = input_gradients(model, x)  # detached batch statistics over the grid
        calibrate(model, x)
        slow = torch.cat([input_gradients(model, x[i:i + 1]) for i in range(x.shape[0])])
        torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-10)
        with torch.no_grad():
            fd = _finite_diff(lambda z, m=model: m(z).sum(1), x, eps=1e-7)
        # ReLU kinks between grid points are nowhere near ±eps: exact agreement
        torch.testing.assert_close(fast, fd, rtol=1e-5, atol=1e-6)


def test_grad_through_stats_differs_from_frozen():
    """Train-mode BN couples the points: the per-point 'derivative' is another quantity."""
    x = grid(-2, 2, 32, dtype=torch.float64)
    model = MLP([1, 8, 8, 1], "relu", norm="bn", norm_from=2, bias_std=1.0,
                generator=_g(4)).double()
    frozen = input_gradients(model, x)
    y0 = model(x)
    for m in model.modules():
        if isinstance(m, FrozenNorm):
            m.grad_through_stats = True
    coupled = input_gradients(model, x)
    assert not torch.allclose(frozen, coupled)
    torch.testing.assert_close(model(x), y0)  # the forward values are identical either way


def test_segment_endpoints_and_shape():
    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    s = segment(a, b, 5)
    assert s.shape == (5, 2, 3)
    torch.testing.assert_close(s[0], a)
    torch.testing.assert_close(s[-1], b)
    torch.testing.assert_close(s[2], torch.full((2, 3), 0.5))


def test_autocorrelation_matches_direct_formula():
    g = torch.randn(3, 40, generator=_g(5), dtype=torch.float64)
    acf = autocorrelation(g, 10)
    c = g - g.mean(-1, keepdim=True)
    for k in range(11):
        direct = (c[:, : 40 - k] * c[:, k:]).sum(-1) / (c * c).sum(-1)
        torch.testing.assert_close(acf[:, k], direct)


def test_acf_of_white_brown_and_ar1_noise():
    g = _g(6)
    m = 4096
    white = torch.randn(16, m, generator=g, dtype=torch.float64)
    acf_w = autocorrelation(white, 5).mean(0)
    assert acf_w[0] == 1.0
    assert acf_w[1:].abs().max() < 3 / math.sqrt(16 * m)  # ≈ 0 (E = −1/M)
    brown = white.cumsum(-1)
    acf_b = autocorrelation(brown, 5).mean(0)
    assert acf_b[1] > 0.98 and (acf_b[1:] <= acf_b[:-1]).all()  # random walk: ~1, decreasing
    phi = 0.8  # AR(1): ACF(k) = φ^k
    e = torch.randn(8, m, generator=g, dtype=torch.float64)
    x = torch.zeros_like(e)
    x[:, 0] = e[:, 0] / math.sqrt(1 - phi**2)
    for t in range(1, m):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    acf = autocorrelation(x, 4).mean(0)
    torch.testing.assert_close(acf, torch.tensor([phi**k for k in range(5)],
                                                 dtype=torch.float64), atol=0.02, rtol=0)


def test_covariance_image():
    g = torch.tensor([1.0, -1.0, 1.0, -1.0])
    img = covariance_image(g)
    assert img.shape == (4, 4)
    torch.testing.assert_close(img, torch.ones(4, 4))  # |±1·±1| / σ² with σ² = 1
    assert torch.allclose(torch.diagonal(covariance_image(torch.randn(50, generator=_g(7)))).mean(),
                          torch.tensor(1.0))


def test_effective_rank_of_known_matrices():
    assert effective_rank(torch.eye(7)) == pytest.approx(7.0)
    u, v = torch.randn(9, 1, generator=_g(8)), torch.randn(1, 5, generator=_g(9))
    assert effective_rank(u @ v) == pytest.approx(1.0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=_g(10)))
    assert effective_rank(q @ torch.diag(torch.tensor([2.0, 1, 1, 1, 1, 1])) ) == pytest.approx(
        (4 + 5) / 4)
    z = torch.randn(64, 200, generator=_g(11))
    assert relative_effective_rank(z, _g(12)) == pytest.approx(1.0, abs=0.1)
    assert relative_effective_rank(u @ v, _g(13)) < 0.5


def test_shattering_bundle_on_a_segment():
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    path = segment(torch.zeros(3), torch.ones(3), 32)
    s = shattering(model, path, generator=_g(14))
    assert s.gradients.shape == (32, 3) and s.trace.shape == (32,) and s.acf.shape == (32,)
    assert s.acf[0] == pytest.approx(1.0) and -1 <= s.lag1 <= 1 and s.relative_rank > 0
