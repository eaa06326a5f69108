"""The S-seed ensemble (torch.func: stacked params, functional_call, vmap) against S plain runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradprobe.tasks.parity import parity_labels, parity_net, sample_inputs, sample_secret
from gradprobe.training.ensemble import SGD, Adam, Ensemble
from gradprobe.training.metrics import hinge

D, B, STEPS = 6, 32, 40


def _gens(key: str, seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1000 * s + sum(map(ord, key))) for s in seeds]


def _data(seeds: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-seed streams: (STEPS, S, B, D) inputs and (STEPS, S, B) labels."""
    xs, ys = [], []
    for g in _gens("data", seeds):
        v = sample_secret(D, g)
        x = sample_inputs((STEPS, B), D, g)
        xs.append(x)
        ys.append(parity_labels(x, v))
    return torch.stack(xs, 1), torch.stack(ys, 1)


def _ensemble_run(seeds: list[int], opt, force_vmap: bool = False) -> Ensemble:
    ens = Ensemble.build(lambda g: parity_net(D, g), _gens("init", seeds))
    ens.force_vmap = force_vmap
    x, y = _data(seeds)
    for t in range(STEPS):
        ens.step(opt, hinge, x[t], y[t], stacked=not force_vmap)
    return ens


def _sequential_run(seed: int, make_opt) -> nn.Module:
    """One seed trained by a plain nn.Module + torch.optim loop (the reference)."""
    (g,) = _gens("init", [seed])
    net = parity_net(D, g)
    opt = make_opt(net.parameters())
    x, y = _data([seed])
    for t in range(STEPS):
        opt.zero_grad()
        hinge(net(x[t, 0]), y[t, 0]).backward()
        opt.step()
    return net


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_ensemble_equals_sequential_runs(kind: str) -> None:
    seeds = [0, 1, 2, 3]
    if kind == "sgd":
        ens = _ensemble_run(seeds, SGD(0.05))
        make = lambda p: torch.optim.SGD(p, lr=0.05)  # noqa: E731
    else:
        ens = _ensemble_run(seeds, Adam(1e-2, betas=(0.9, 0.99), eps=1e-5))
        make = lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.9, 0.99), eps=1e-5)  # noqa: E731
    for i, s in enumerate(seeds):
        ref = dict(_sequential_run(s, make).named_parameters())
        for k, p in ens.unstack(i).items():
            torch.testing.assert_close(p, ref[k].detach(), rtol=1e-5, atol=1e-6)


def test_fast_path_equals_vmap_path() -> None:
    seeds = [0, 1, 2]
    fast = _ensemble_run(seeds, SGD(0.05))
    generic = _ensemble_run(seeds, SGD(0.05), force_vmap=True)
    assert fast.fast and not generic.fast
    for k in fast.params:
        torch.testing.assert_close(fast.params[k], generic.params[k], rtol=1e-5, atol=1e-6)
    x = sample_inputs((3, 17), D, torch.Generator().manual_seed(5))
    torch.testing.assert_close(fast(x), generic(x), rtol=1e-5, atol=1e-6)


def test_seed_does_not_depend_on_ensemble_size() -> None:
    big = _ensemble_run([0, 1, 2, 3, 4], SGD(0.05))
    alone = _ensemble_run([3], SGD(0.05))
    for k in big.params:
        torch.testing.assert_close(big.params[k][3], alone.params[k][0], rtol=1e-5, atol=1e-6)


def test_generic_module_and_state_roundtrip() -> None:
    """A non-Sequential module takes the vmap path; state_dict round-trips the parameters."""

    class Bilinear(nn.Module):
        def __init__(self, g: torch.Generator) -> None:
            super().__init__()
            self.a = nn.Parameter(torch.randn(4, generator=g))
            self.b = nn.Parameter(torch.randn(4, generator=g))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x @ self.a) * (x @ self.b)

    ens = Ensemble.build(Bilinear, _gens("bil", [0, 1]))
    assert not ens.fast
    x = torch.randn(2, 8, 4, generator=torch.Generator().manual_seed(1))
    y = torch.randn(2, 8, generator=torch.Generator().manual_seed(2))
    loss, grads = ens.loss_and_grads(lambda p, t: ((p - t) ** 2).mean(), x, y)
    for s in range(2):  # per-seed gradients by plain autograd
        a = ens.params["a"][s].clone().requires_grad_(True)
        b = ens.params["b"][s].clone().requires_grad_(True)
        ref = (((x[s] @ a) * (x[s] @ b) - y[s]) ** 2).mean()
        ga, gb = torch.autograd.grad(ref, [a, b])
        torch.testing.assert_close(loss[s], ref.detach())
        torch.testing.assert_close(grads["a"][s], ga)
        torch.testing.assert_close(grads["b"][s], gb)
    state = {k: v.clone() for k, v in ens.state_dict()["params"].items()}
    SGD(0.1).update(ens.params, grads)
    ens.load_state_dict({"params": state, "buffers": {}})
    for k in state:
        assert torch.equal(ens.params[k], state[k])
