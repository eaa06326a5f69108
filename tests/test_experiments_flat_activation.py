"""experiments.flat_activation: the straight-through update, the per-seed losses, the claims."""

from __future__ import annotations

import math

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


def _res(**mse) -> dict:
    res = {v: {"test_mse": m} for v, m in mse.items()}
    res["mean_test_mse"] = {v: sum(m) / len(m) for v, m in mse.items()}
    return res


def test_claims_on_per_seed_log_ratios() -> None:
    cfg = fa.Config()
    fo = [6e-5, 1.5e-4, 1.5e-4]
    res = _res(smooth_approx=[0.85, 0.1, 0.85], end_to_end=[1.4e-3, 2.7e-3, 1.7e-3],
               multiclass=[1.3e-3, 7.7e-4, 1.6e-3], forward_only=fo)
    best, fails = fa.claims(res, cfg)
    assert best.verdict == "holds" and fails.verdict == "holds" and fails.n == 3
    x = [math.log10(a / b) for a, b in zip([0.85, 0.1, 0.85], fo)]
    m = sum(x) / 3
    half = 4.302652729911275 * math.sqrt(sum((v - m) ** 2 for v in x) / 2) / math.sqrt(3)
    assert fails.statistic == pytest.approx(m)
    assert fails.interval == pytest.approx([m - half, m + half])
    assert fails.threshold == 1.0
    # smooth_approx learns on two seeds of three (as at τ = 0.02): not ≥ 10× on its interval
    res2 = _res(smooth_approx=[0.85, 2e-4, 3e-4], end_to_end=[1.4e-3] * 3,
                multiclass=[1e-3] * 3, forward_only=fo)
    assert fa.claims(res2, cfg)[1].verdict in ("inconclusive", "fails")
    # forward_only worse than multiclass on every seed: fails
    res3 = _res(smooth_approx=[0.8] * 3, end_to_end=[1e-3] * 3, multiclass=[1e-5, 2e-5, 3e-5],
                forward_only=fo)
    assert fa.claims(res3, cfg)[0].verdict == "fails"


def test_claims_not_applicable_without_their_variants() -> None:
    res = _res(end_to_end=[1e-3] * 3, multiclass=[1e-3] * 3)
    best, fails = fa.claims(res, fa.Config(variants=("end_to_end", "multiclass")))
    assert best.verdict == fails.verdict == "not_applicable"
    assert "forward_only" in best.expected and "smooth_approx" in fails.expected


def test_temperature_is_a_declared_free_choice_and_steps_are_equal_at_quick() -> None:
    cfg = fa.Config()
    assert cfg.free_choices()["smooth_temperature"]["values"] == [0.005, 0.02]
    assert cfg.free_choices()["smooth_temperature"]["value"] == 0.005
    assert cfg.iterations == cfg.forward_only_iterations  # SPEC D2: same steps at quick
