"""tasks.pwl: the curve generator, W and its inverse, the conv's window moments."""

from __future__ import annotations

import pytest
import torch

from gradprobe.tasks import pwl as task


@pytest.mark.parametrize("n", [5, 100])
def test_w_times_u_is_identity(n: int) -> None:
    w, u = task.ramp_matrix(n), task.ramp_inverse(n)
    eye = torch.eye(n, dtype=torch.float64)
    assert torch.equal(w @ u, eye)
    assert torch.equal(u @ w, eye)
    assert w[3, 1] == 3 and w[1, 3] == 0 and w[2, 2] == 1


def test_generator_f_equals_w_p() -> None:
    n = 50
    g = torch.Generator().manual_seed(0)
    p = task.sample_p(500, n, g, dtype=torch.float64)
    assert torch.allclose(task.curves(p), p @ task.ramp_matrix(n).T, rtol=0, atol=1e-10)
    nz = (p != 0).sum(-1)
    assert torch.equal(nz, torch.full_like(nz, task.K_KINKS))  # three distinct kinks
    assert p.abs().max() <= 1.0


def test_positions_are_uniform() -> None:
    n = 10
    g = torch.Generator().manual_seed(1)
    p = task.sample_p(30_000, n, g)
    freq = (p != 0).double().mean(0)  # each position: probability k/n = 0.3
    assert torch.allclose(freq, torch.full((n,), 0.3, dtype=torch.float64), atol=0.015)


def test_conv_filter_decodes_exactly_with_input_padding() -> None:
    """(1, −2, 1) on the left-padded input recovers p, kinks at θ ∈ {0, 1} included."""
    n = 20
    p = torch.zeros(3, n, dtype=torch.float64)
    p[0, 0], p[1, 1], p[2, [0, 1, n - 1]] = 0.5, -0.7, torch.tensor([0.3, -0.2, 0.9]).double()
    f = task.curves(p)
    rec = task.conv3(f, torch.tensor(task.TARGET_FILTER, dtype=torch.float64))
    assert torch.allclose(rec, p, atol=1e-12)
    assert torch.allclose(f @ task.ramp_inverse(n).T, p, atol=1e-12)


def test_window_moments_give_the_autograd_gradient() -> None:
    """The conv's fast gradient (batch moments) equals autograd of the mean squared error."""
    n, b = 15, 8
    g = torch.Generator().manual_seed(4)
    p = task.sample_p(b, n, g, dtype=torch.float64)
    f = task.curves(p)
    w = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    loss = ((task.conv3(f, w) - p) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, w)
    mom = task.window_moments(p, f)
    fast = mom[:, :3] @ w.detach() - mom[:, 3]
    assert torch.allclose(fast, grad, atol=1e-10)


def test_relative_error() -> None:
    t = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert float(task.relative_error(t * 1.1, t)) == pytest.approx(0.1)
