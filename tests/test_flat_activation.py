"""A8 flat_activation: the staircase, its smoothing, the straight-through update, the experiment."""

from __future__ import annotations

import pytest
import torch

from gradprobe.experiments import flat_activation as fa
from gradprobe.runs.store import execute, resolve
from gradprobe.tasks import steps as task


def test_step_set() -> None:
    off = torch.tensor(task.OFFSETS)
    assert len(task.OFFSETS) == 52  # 40 coarse + 15 fine − {−5, 0, 5} shared
    assert torch.all(off[1:] > off[:-1])
    assert off[0] == -100 and off[-1] == 95
    for z in (-0.2, 0.1, 0.15, 0.175, -100.0, 95.0, 3.0):
        assert z in task.OFFSETS


def test_staircase_is_max_step_below() -> None:
    """u(r) = max{z ∈ Z : z ≤ r} against a brute-force scan."""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(3, generator=g)
    z = task.step_values(b)
    r = b[:, None] + torch.randn(3, 400, generator=g) * 3
    r[:, :3] = z[:, 40:43]  # exactly on a step: u(z_k) = z_k
    u = task.staircase(r, z)
    brute = torch.where(z[:, None, :] <= r[..., None], z[:, None, :], -torch.inf).amax(-1)
    assert torch.equal(u, brute)


def test_smooth_staircase_tends_to_exact() -> None:
    z = task.step_values(torch.tensor([0.3]))
    r = torch.tensor([[0.3 - 0.1, 0.3 + 0.05, 0.3 + 0.5, 0.3 + 2.5]])  # away from the jumps
    assert torch.allclose(task.smooth_staircase(r, z, 1e-3), task.staircase(r, z), atol=1e-5)


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
    """The experiment's forward_only loss (batched over seeds) has the rule as its gradient."""
    cfg = fa.Config.smoke()
    g = torch.Generator().manual_seed(2)
    params = [p.double().requires_grad_() for p in fa._init("forward_only", cfg, g)]
    s, n = cfg.seeds, 16
    x = torch.randn(s, n, cfg.dim, generator=g, dtype=torch.float64)
    z = task.step_values(torch.randn(s, generator=g, dtype=torch.float64))
    y = task.staircase(torch.randn(s, n, generator=g, dtype=torch.float64), z)
    k = task.staircase_index(y, z)
    loss = fa._loss("forward_only", params, x, y, k, z, cfg)
    gw, gb = torch.autograd.grad(loss, params)
    for i in range(s):
        rw, rb = fa.forward_only_update(params[0][i, :, 0].detach(), params[1][i, 0, 0].detach(),
                                        x[i], y[i], z[i])
        assert torch.allclose(gw[i, :, 0], rw) and torch.allclose(gb[i, 0, 0], rb)


def test_batched_mlp_matches_per_seed_linear_layers() -> None:
    cfg = fa.Config.smoke()
    g = torch.Generator().manual_seed(3)
    params = fa._init("end_to_end", cfg, g)
    x = torch.randn(cfg.seeds, 5, cfg.dim, generator=g)
    out = fa._mlp(params, x)
    for s in range(cfg.seeds):
        h = x[s]
        for i in range(0, len(params), 2):
            h = h @ params[i][s] + params[i + 1][s, 0]
            if i < len(params) - 2:
                h = torch.relu(h)
        assert torch.allclose(out[s], h, atol=1e-5)


@pytest.mark.parametrize("bad", [{"iterations": 0}, {"variants": ["nope"]}])
def test_config_refuses_bad_values(bad) -> None:
    from gradprobe.errors import ConfigError

    with pytest.raises(ConfigError):
        resolve("flat_activation", "smoke", overrides=bad)


def test_flat_activation_smoke(tmp_path) -> None:
    s = execute(resolve("flat_activation", "smoke", out=tmp_path, device="cpu"), quiet=True)
    assert s["status"] == "complete"
    assert {c["id"] for c in s["claims"]} == {"forward_only_best", "smooth_approx_fails"}
    assert all(isinstance(c["holds"], bool) for c in s["claims"])
    res = s["results"]
    assert set(res["mean_test_mse"]) == set(fa.VARIANTS)
    assert all(len(res[v]["test_mse"]) == 2 for v in fa.VARIANTS)
    run_dir = next((tmp_path / "flat_activation").iterdir())
    for name in ("flat_activation.png", "flat_activation_mse.png"):
        assert (run_dir / name).stat().st_size > 1000
