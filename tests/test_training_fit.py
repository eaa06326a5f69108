"""training/fit.py: evaluation points, resume equivalence after a checkpoint, divergence."""

from __future__ import annotations

import math

import torch

from gradprobe.runs.context import RunContext
from gradprobe.training.fit import fit


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 3, generator=g))
        model.bias.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = torch.Generator().manual_seed(seed + 1)
    w_true = torch.tensor([[1.0, -2.0, 0.5]])

    def step(i: int) -> torch.Tensor:
        x = torch.randn(8, 3, generator=data)
        loss = ((model(x) - x @ w_true.T) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.detach()

    def evaluate(i: int) -> dict:
        return {"w0": float(model.weight[0, 0].detach())}

    return model, opt, data, step, evaluate


def test_evaluation_points_and_history(tmp_path):
    ctx = RunContext(tmp_path, 0, torch.device("cpu"), quiet=True, checkpoint_every_s=1e9)
    model, opt, data, step, evaluate = _problem()
    res = fit(ctx, "lin", steps=25, step=step, eval_every=10, evaluate=evaluate,
              state={"model": model, "opt": opt, "data": data})
    ctx.close()
    assert res.column("step") == [0, 10, 20, 25]
    assert res.history[0]["train_loss"] is None and res.history[1]["train_loss"] > 0
    assert not res.diverged and res.steps_done == 25


def test_resume_from_a_checkpoint_equals_uninterrupted(tmp_path):
    ref_ctx = RunContext(tmp_path / "ref", 0, torch.device("cpu"), quiet=True,
                         checkpoint_every_s=1e9)
    m, o, d, step, ev = _problem()
    ref = fit(ref_ctx, "lin", steps=30, step=step, eval_every=7, evaluate=ev,
              state={"model": m, "opt": o, "data": d})
    ref_ctx.close()

    class Stop(Exception):
        pass

    run_dir = tmp_path / "run"
    ctx = RunContext(run_dir, 0, torch.device("cpu"), quiet=True, checkpoint_every_s=0.0)
    m, o, d, step, ev = _problem()

    def dying(i: int):
        if i == 18:
            raise Stop
        return step(i)

    try:
        fit(ctx, "lin", steps=30, step=dying, eval_every=7, evaluate=ev,
            state={"model": m, "opt": o, "data": d})
    except Stop:
        ctx.close()
    ctx = RunContext(run_dir, 0, torch.device("cpu"), quiet=True, checkpoint_every_s=1e9)
    assert ctx.resumed
    m, o, d, step, ev = _problem(seed=5)  # fresh objects; their state comes from the checkpoint
    res = fit(ctx, "lin", steps=30, step=step, eval_every=7, evaluate=ev,
              state={"model": m, "opt": o, "data": d})
    ctx.close()
    assert res.history == ref.history
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(ref.history)  # each evaluation logged exactly once


def test_chunked_steps_and_divergence(tmp_path):
    ctx = RunContext(tmp_path, 0, torch.device("cpu"), quiet=True, checkpoint_every_s=1e9)
    calls = []

    def step(i: int, k: int) -> torch.Tensor:
        calls.append((i, k))
        return torch.tensor([1.0 * k, math.inf if i >= 20 else 2.0 * k])

    res = fit(ctx, "ens", steps=50, step=step, eval_every=10, chunked=True,
              evaluate=lambda i: {"i": i})
    ctx.close()
    assert calls == [(0, 10), (10, 10), (20, 10)]
    assert res.diverged_at == 30 and res.column("step") == [0, 10, 20, 30]
    assert res.history[1]["train_loss"] == [1.0, 2.0] and ctx.diverged
