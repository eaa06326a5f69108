"""Var(H, F, w): exact enumeration against brute force, closed form, Thm 1 and sampling."""

from __future__ import annotations

import math

import pytest
import torch

from gradprobe.nets.parity import parity_net
from gradprobe.probes.target_variance import (
    loss_derivative,
    per_sample_jacobians,
    target_variance,
)
from gradprobe.tasks.parity import all_inputs, parity_matrix
from gradprobe.theory.parity import parity_bound, parity_variance_closed_form


def _net(d: int, seed: int = 0, bias: float = 0.0) -> torch.nn.Module:
    net = parity_net(d, torch.Generator().manual_seed(seed)).double()
    if bias:
        with torch.no_grad():  # larger outputs (|p| > 1 on some inputs) exercise the hinge kink
            net[2].weight.mul_(4.0)
            net[2].bias.fill_(bias)
    return net


def _brute_force_var(net, x, targets, loss) -> float:
    """One autograd gradient of F_h per target, then the population variance."""
    grads = []
    for h in targets:
        net.zero_grad()
        p = net(x).squeeze(1)
        f = (torch.clamp(1 - h * p, min=0) if loss == "hinge" else 0.5 * (p - h) ** 2).mean()
        f.backward()
        grads.append(torch.cat([q.grad.reshape(-1) for q in net.parameters()]))
    g = torch.stack(grads)
    return float((g - g.mean(0)).pow(2).sum(1).mean())


@pytest.mark.parametrize("loss", ["hinge", "square"])
@pytest.mark.parametrize("bias", [0.0, 0.7])
def test_exact_enumeration_matches_brute_force_and_bound(loss: str, bias: float) -> None:
    d = 5
    net = _net(d, bias=bias)
    x, h = all_inputs(d).double(), parity_matrix(d).double()
    tv = target_variance(net, x, h, loss, exact=True, chunk=7)  # chunks that do not divide 2^d
    assert tv.var == pytest.approx(_brute_force_var(net, x, h, loss), rel=1e-9)
    assert tv.n_targets == 2**d and tv.n_inputs == 2**d and tv.n_params == 10 * d * d + 20 * d + 1
    assert tv.var <= parity_bound(tv.g2, d)  # Theorem 1
    p, jac = per_sample_jacobians(net, x)
    assert tv.var == pytest.approx(parity_variance_closed_form(loss, p, jac.pow(2).sum(1)),
                                   rel=1e-9)
    if loss == "hinge":
        if bias:
            assert float(p.abs().max()) > 1  # the kink is exercised: the bound is not tight
            assert tv.var < 0.95 * parity_bound(tv.g2, d)


def test_sampled_estimate_is_unbiased() -> None:
    """The mean of many T-target sampled estimates lands on the exact value (within 4 SE)."""
    d, t, reps = 4, 6, 400
    net = _net(d, seed=2)
    x, h = all_inputs(d).double(), parity_matrix(d).double()
    exact = target_variance(net, x, h, "hinge", exact=True).var
    g = torch.Generator().manual_seed(0)
    est = torch.tensor([
        target_variance(net, x, h[torch.randint(0, 2**d, (t,), generator=g)], "hinge",
                        exact=False).var
        for _ in range(reps)
    ], dtype=torch.float64)
    se = float(est.std() / math.sqrt(reps))
    assert abs(float(est.mean()) - exact) < 4 * se


def test_per_sample_jacobians_match_autograd() -> None:
    net = _net(3, bias=0.3)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    p, jac = per_sample_jacobians(net, x)
    for i in range(5):
        net.zero_grad()
        out = net(x[i:i + 1]).reshape(())
        out.backward()
        ref = torch.cat([q.grad.reshape(-1) for q in net.parameters()])
        torch.testing.assert_close(jac[i], ref)
        torch.testing.assert_close(p[i], out.detach())


def test_floor_matches_variance_for_independent_noise_targets() -> None:
    """Targets that are i.i.d. ±1 noise at each input carry no signal: Var ≈ the floor."""
    d, n, t = 3, 1024, 64
    g = torch.Generator().manual_seed(4)
    net = _net(d)
    x = torch.randn(n, d, dtype=torch.float64, generator=g)
    y = torch.randint(0, 2, (t, n), generator=g).double() * 2 - 1
    tv = target_variance(net, x, y, "square", exact=False, chunk=300)
    assert 0.8 < tv.var / tv.floor < 1.25


def test_loss_derivative() -> None:
    p = torch.tensor([0.5, 2.0, -0.3])
    y = torch.tensor([1.0, 1.0, -1.0])
    assert torch.equal(loss_derivative("hinge", p, y), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(loss_derivative("square", p, y), p - y)
