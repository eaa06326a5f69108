"""experiments.flat_activation: the straight-through update, the per-seed losses, the claims."""

from __future__ import annotations

import pytest
import torch

from gradprobe.experiments import flat_activation as fa
from gradprobe.runs.store import resolve
from gradprobe.tasks import steps as task
from gradprobe.training.ensemble import Ensemble


def test_straight_through_update_equals_the_rule() -> None:
    """Autograd through the straight-through staircase of ½·mean (u(wᵀx + b) − y)² gives
    E[(u(wᵀx + b) − y) x] and E[u(wᵀx + b) − y]: SPEC A8's update on a small batch."""
    g = torch.Generator().manual_seed(1)
    d, n = 7, 32
    v_star, b_star = task.sample_teacher(g, d, dtype=torch.float64)
    z = task.step_values(b_star[None])
    x = task.sample_inputs(n, d, g, dtype=torch.float64) * 30  # spread r over several steps
    y = task.staircase((x @ v_star + b_star)[None], z)[0]
    w = (torch.randn(d, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    b = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    out = task.straight_through((x @ w + b)[None], z)[0]
    assert torch.equal(out.detach(), task.staircase((x @ w + b).detach()[None], z)[0])
    loss = 0.5 * ((out - y) ** 2).mean()
    gw, gb = torch.autograd.grad(loss, (w, b))
    rule_w, rule_b = fa.forward_only_update(w.detach(), b.detach(), x, y, z[0])
    assert torch.allclose(gw, rule_w) and torch.allclose(gb, rule_b)
    assert rule_w.abs().sum() > 0  # the batch does see the error


def test_experiment_loss_is_the_straight_through_rule() -> None:
    """The experiment's forward_only loss on an ensemble of seeds has, per seed, the rule as
    its gradient."""
    cfg = fa.Config.smoke()
    g = torch.Generator().manual_seed(2)
    s, n = cfg.seeds, 16
    gens = [torch.Generator().manual_seed(10 + i) for i in range(s)]
    ens = Ensemble.build(lambda gi: fa._net("forward_only", cfg, gi).double(), gens)
    x = torch.randn(s, n, cfg.dim, generator=g, dtype=torch.float64)
    z = task.step_values(torch.randn(s, generator=g, dtype=torch.float64))
    y = task.staircase(torch.randn(s, n, generator=g, dtype=torch.float64), z)
    loss, grads = ens.loss_and_grads(fa._loss_fn("forward_only", z, 0.005), x, y, stacked=True)
    assert loss.shape == (s,)
    for i in range(s):
        w, b = ens.params["0.weight"][i, 0], ens.params["0.bias"][i, 0]
        rw, rb = fa.forward_only_update(w, b, x[i], y[i], z[i])
        assert torch.allclose(grads["0.weight"][i, 0], rw)
        assert torch.allclose(grads["0.bias"][i, 0], rb)


@pytest.mark.parametrize("bad", [{"iterations": 0}, {"variants": ["nope"]}])
def test_config_refuses_bad_values(bad) -> None:
    from gradprobe.errors import ConfigError

    with pytest.raises(ConfigError):
        resolve("flat_activation", "smoke", overrides=bad)
