"""Parity task (SPEC A1): data, hinge-loss gradients, the experiment, and resume after a kill."""

from __future__ import annotations

import json

import pytest
import torch

from gradprobe.runs import context as context_mod
from gradprobe.runs.store import execute, resolve
from gradprobe.tasks.parity import (
    all_inputs,
    parity_labels,
    parity_matrix,
    parity_net,
    sample_inputs,
)
from gradprobe.training.ensemble import Ensemble
from gradprobe.training.metrics import hinge
from gradprobe.training.metrics import sign_accuracy as accuracy


def test_parity_matrix_is_hadamard_and_matches_labels() -> None:
    d = 5
    h = parity_matrix(d)
    assert torch.equal(h @ h.T, 2**d * torch.eye(2**d))  # pairwise orthogonal, E h² = 1
    x = all_inputs(d)
    assert torch.equal(x[0], torch.zeros(d))  # x = 0 first: every parity is +1 there
    v = all_inputs(d)[13]
    assert torch.equal(parity_labels(x, v), h[13])


def test_net_shape_and_init() -> None:
    net = parity_net(7, torch.Generator().manual_seed(0))
    w1, b1, w2, b2 = (p.detach() for p in net.parameters())
    assert w1.shape == (70, 7) and w2.shape == (1, 70)
    assert torch.all(b1 == 0) and torch.all(b2 == 0)
    assert w1.abs().max() <= 2 / 7**0.5 + 1e-6  # truncated at ±2 std, std 1/sqrt(fan_in)
    assert 0.7 < float(w1.std() * 7**0.5) < 1.0  # a ±2σ-truncated normal has std 0.88σ


def test_hinge_gradients_match_finite_differences() -> None:
    """Ensemble gradients of the hinge loss against central differences (float64)."""
    d, n = 4, 64
    g = torch.Generator().manual_seed(3)
    ens = Ensemble.build(lambda gg: parity_net(d, gg).double(),
                         [torch.Generator().manual_seed(s) for s in range(2)])
    x = sample_inputs((2, n), d, g).double()
    y = parity_labels(x, torch.tensor([1.0, 0, 1, 1], dtype=torch.float64))
    for k in ("0.bias", "2.bias"):  # zero biases put x = 0 on every ReLU kink: move off them
        ens.params[k].normal_(0.0, 0.3, generator=g)
    _, grads = ens.loss_and_grads(hinge, x, y, stacked=True)
    assert bool((hinge(ens(x), y) > 0).all())
    eps = 1e-6
    for k, p in ens.params.items():
        flat = p.view(-1)
        for idx in torch.randperm(flat.numel(), generator=g)[:6].tolist():
            old = float(flat[idx])
            flat[idx] = old + eps
            up = hinge(ens(x), y)
            flat[idx] = old - eps
            down = hinge(ens(x), y)
            flat[idx] = old
            fd = ((up - down) / (2 * eps)).sum()  # only the owning seed's loss moves
            torch.testing.assert_close(grads[k].reshape(-1)[idx], fd, rtol=1e-5, atol=1e-7)


def test_accuracy_and_hinge_values() -> None:
    pred = torch.tensor([[2.0], [-0.5], [0.5], [-3.0]])
    y = torch.tensor([1.0, 1.0, -1.0, -1.0])
    assert float(accuracy(pred, y)) == 0.5
    assert float(hinge(pred, y)) == pytest.approx((0 + 1.5 + 1.5 + 0) / 4)


def test_parity_smoke(tmp_path) -> None:
    s = execute(resolve("parity", "smoke", out=tmp_path), quiet=True)
    assert s["status"] == "complete"
    ids = {c["id"]: c for c in s["claims"]}
    assert set(ids) == {"small_d_learned", "large_d_at_chance"}
    assert all(isinstance(c["holds"], bool) for c in s["claims"])
    assert ids["small_d_learned"]["measured"].keys() == {"4"}
    assert (tmp_path / "parity" / s["run_id"] / "parity_accuracy.png").exists()
    r = s["results"]["per_d"]["20"]
    assert len(r["steps"]) == len(r["acc_mean"]) == 300 // 100 + 1
    assert len(r["acc_per_seed"]) == 2


def test_parity_resume_after_kill_is_bit_identical(tmp_path, monkeypatch) -> None:
    """Kill the run inside d=20's training loop (after its first checkpoint, with d=4 finished as
    a stage); the rerun resumes from the checkpoint (parameters + generator states) and ends with
    exactly the results and metrics of an uninterrupted run."""
    overrides = {"dims": [4, 20], "iterations": 500, "seeds": 2}
    full = execute(resolve("parity", "smoke", overrides=overrides, out=tmp_path / "a"),
                   quiet=True)
    monkeypatch.setenv("GRADPROBE_CHECKPOINT_EVERY", "0")  # checkpoint at every evaluation
    original = context_mod.RunContext.save_checkpoint
    calls = {"n": 0}

    class Killed(Exception):
        pass

    def dying_save(self, state, name="state"):
        original(self, state, name)
        calls["n"] += 1
        if name == "parity_d20" and state["step"] >= 200:
            raise Killed("simulated kill after a checkpoint")

    monkeypatch.setattr(context_mod.RunContext, "save_checkpoint", dying_save)
    req = resolve("parity", "smoke", overrides=overrides, out=tmp_path / "b")
    first = execute(req, quiet=True)
    assert first["status"] == "failed" and "Killed" in first["error"]
    monkeypatch.setattr(context_mod.RunContext, "save_checkpoint", original)
    second = execute(req, quiet=True)
    assert second["status"] == "complete" and second["resumed"]
    assert second["results"] == full["results"]
    rows = lambda p: [json.loads(x) for x in p.read_text().splitlines()]  # noqa: E731
    assert rows(req.run_dir / "metrics.jsonl") == rows(
        tmp_path / "a" / "parity" / full["run_id"] / "metrics.jsonl")
