"""probes.parity_gradients: every parity's gradient by one transform, against brute force."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradprobe.nets.parity import parity_net
from gradprobe.probes.parity_gradients import jacobians, parity_gradients
from gradprobe.probes.target_variance import per_sample_jacobians
from gradprobe.tasks.parity import all_inputs, parity_matrix
from gradprobe.theory.parity import parity_bound


def _net(d: int, bias: float) -> nn.Module:
    net = parity_net(d, torch.Generator().manual_seed(d)).double()
    with torch.no_grad():  # larger outputs (|p| > 1 on some inputs) exercise the hinge's kinks
        net[2].weight.mul_(1.0 + 3.0 * bool(bias))
        net[2].bias.fill_(bias)
    return net


def _brute_force(net: nn.Module, d: int, loss: str) -> torch.Tensor:
    """One autograd gradient of F_s = mean_x ℓ(p(x), χ_s(x)) per parity s: (2^d, P)."""
    x, grads = all_inputs(d).double(), []
    for h in parity_matrix(d).double():
        net.zero_grad()
        p = net(x).squeeze(1)
        f = (torch.clamp(1 - h * p, min=0) if loss == "hinge" else 0.5 * (p - h) ** 2).mean()
        f.backward()
        grads.append(torch.cat([q.grad.reshape(-1) for q in net.parameters()]))
    return torch.stack(grads)


@pytest.mark.parametrize("loss", ["hinge", "square"])
@pytest.mark.parametrize("bias", [0.0, 0.7])
def test_every_parity_gradient_matches_autograd(loss: str, bias: float) -> None:
    d = 4
    net = _net(d, bias)
    g = _brute_force(net, d, loss)
    dev2 = (g - g.mean(0)).pow(2).sum(1)
    # a slab budget of 7 columns: many parameter chunks, one not dividing P
    pg = parity_gradients(net, d, loss, input_chunk=5, memory_bytes=8 * 2**d * 7)
    assert pg.param_chunks > 10
    torch.testing.assert_close(pg.dev2, dev2, rtol=1e-9, atol=1e-14)
    assert pg.var == pytest.approx(float(dev2.mean()), rel=1e-10)
    assert pg.var_parseval == pytest.approx(pg.var, rel=1e-10)
    assert pg.mean_grad_norm2 == pytest.approx(float(g.mean(0).pow(2).sum()), rel=1e-10)
    weight = all_inputs(d).sum(1).long()
    for k in range(d + 1):
        assert pg.var_by_degree[k] == pytest.approx(float(dev2[weight == k].sum()) / 2**d,
                                                    rel=1e-9, abs=1e-15)
    _, jac = per_sample_jacobians(net, all_inputs(d).double())
    assert pg.g2 == pytest.approx(float(jac.pow(2).sum(1).mean()), rel=1e-12)
    assert pg.var <= parity_bound(pg.g2, d)  # Theorem 1
    if bias and loss == "hinge":
        assert pg.max_abs_pred > 1 and pg.var < 0.95 * parity_bound(pg.g2, d)


def test_closed_form_jacobian_columns_match_torch_func() -> None:
    net = _net(5, 0.3)
    with torch.no_grad():
        net[0].bias.normal_(generator=torch.Generator().manual_seed(1))
    x = torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    full = per_sample_jacobians(net, x)[1]
    for a, b in [(0, None), (3, 17), (40, 300), (250, 301), (0, 1), (300, 301)]:
        torch.testing.assert_close(jacobians(net, x, a, b), full[:, a:b])


def test_other_models_take_the_torch_func_path() -> None:
    """A module that is not a plain Linear/activation Sequential still gets exact gradients."""

    class Wrapped(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    d = 3
    net = _net(d, 0.4)
    g = _brute_force(net, d, "hinge")
    pg = parity_gradients(Wrapped(net), d, "hinge", memory_bytes=8 * 2**d * 11)
    torch.testing.assert_close(pg.dev2, (g - g.mean(0)).pow(2).sum(1), rtol=1e-9, atol=1e-14)
