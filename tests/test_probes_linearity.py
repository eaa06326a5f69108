"""probes/linearity.py: the one-Jacobian linearity error separates LL nets from rectifier nets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gradprobe.nets.convnets import build_model
from gradprobe.probes.linearity import linearity_error


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("depth", [10, 52])
def test_ll_net_is_linear_at_init_and_he_relu_is_not(depth):
    """f(x) = A·x with A the Jacobian at ONE reference input: true for the LL net of any depth,
    false for a He ReLU net of the same shape (whose f(x) = J(x)·x holds only per input)."""
    x = torch.randn(16, 1, 16, 16, generator=gen(5))
    x_ref = torch.randn(1, 16, 16, generator=gen(6))
    for name in ("crelu_ll", "prelu_ll"):
        ll = build_model(name, depth, (1, 16, 16), generator=gen(depth)).eval()
        assert linearity_error(ll, x, x_ref) <= 1e-5, name
    relu = build_model("relu", depth, (1, 16, 16), generator=gen(depth)).eval()
    assert linearity_error(relu, x, x_ref) > 0.1
    # ... though the He ReLU net is positively homogeneous: f(x) = J(x)·x per input
    jx = torch.autograd.functional.jacobian(lambda z: relu(z.unsqueeze(0))[0], x[0])
    torch.testing.assert_close(jx.reshape(10, -1) @ x[0].flatten(), relu(x[:1])[0],
                               atol=1e-5, rtol=1e-4)


def test_ll_net_stops_being_linear_after_one_step():
    g = gen(7)
    m = build_model("crelu_ll", 12, (1, 16, 16), generator=g)
    x = torch.randn(32, 1, 16, 16, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    x_ref = x[0]
    assert linearity_error(m.eval(), x, x_ref, affine=True) <= 1e-5
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    m.train()
    F.cross_entropy(m(x), y).backward()
    opt.step()
    assert linearity_error(m.eval(), x, x_ref, affine=True) > 1e-3
