"""fit: the one step loop every experiment trains with (DESIGN "Version 0.2", training/).

An experiment says *what* to train — a `step` function, the objects whose state matters, an
`evaluate` function — and `fit` owns the rest:

- evaluation at step 0, every `eval_every` steps and at the last step, each exactly once across
  interruptions (the history travels in the checkpoint; metrics.jsonl is truncated to the
  checkpoint's offset on resume, see runs/context.py);
- checkpoints when `ctx.checkpoint_due()` (the whole state: every object in `state`, the step,
  the history and the running training loss), loaded with weights_only=True;
- divergence: a non-finite training loss or evaluation value is recorded (`diverged_at`), the
  run is marked diverged (`ctx.mark_diverged`), and training stops (unless told to continue);
- a progress bar.

    def step(i):                      # runs step i (1-based); returns the loss (scalar or (S,))
        ...
    res = fit(ctx, "train_d10", steps=10_000, step=step, eval_every=100,
              state={"model": model, "opt": opt, "data": gen}, evaluate=lambda i: {"acc": ...})
    res.history                        # [{"step": 0, "acc": ..., "train_loss": None}, ...]
    res.column("acc")                  # [acc at each evaluation]

With `chunked=True`, `step(i, k)` runs steps i+1 … i+k at once (e.g. data for k steps generated
in one call) and returns their summed loss; fit calls it with k up to the next evaluation, so
checkpoints fall on evaluation boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

Row = dict[str, Any]


@dataclass
class TrainState:
    """What fit checkpoints besides the objects: the position, the history and the running loss.

    `history` holds one row per evaluation ({"step", "train_loss", **evaluate(step)});
    `loss_sum`/`loss_count` accumulate the training loss since the last evaluation (per seed
    for an ensemble: a list of S floats).
    """

    step: int = 0
    history: list[Row] = field(default_factory=list)
    loss_sum: list[float] | None = None
    loss_count: int = 0
    diverged_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainState:
        return cls(step=int(d["step"]), history=list(d["history"]), loss_sum=d["loss_sum"],
                   loss_count=int(d["loss_count"]), diverged_at=d["diverged_at"])


@dataclass(frozen=True)
class FitResult:
    """The outcome of fit: the evaluation history and where training stopped."""

    history: list[Row]
    steps_done: int
    diverged_at: int | None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def column(self, key: str) -> list[Any]:
        """The values of `key` at every evaluation (None where a row lacks it)."""
        return [row.get(key) for row in self.history]

    @property
    def last(self) -> Row:
        return self.history[-1] if self.history else {}


def fit(
    ctx: Any,
    name: str,
    *,
    steps: int,
    step: Callable[..., Any],
    state: Mapping[str, Any] | None = None,
    evaluate: Callable[[int], Row] | None = None,
    eval_every: int | None = None,
    chunked: bool = False,
    stop_on_divergence: bool = True,
    description: str | None = None,
    log: bool = True,
) -> FitResult:
    """Train for `steps` steps with checkpoint/resume; see the module docstring.

    ctx: the RunContext; name: unique within the run (checkpoint and metrics series name);
    state: name → object (nn.Module, optimizer, Ensemble, scheduler: anything with
    state_dict/load_state_dict; torch.Generator; dict of tensors; lists of these).
    """
    if steps < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    every = int(eval_every) if eval_every else max(steps, 1)
    if every < 1:
        raise ValueError(f"eval_every must be ≥ 1, got {eval_every}")
    objects = dict(state or {})
    ts = TrainState()
    saved = ctx.load_checkpoint(name)
    if saved is not None:
        ts = TrainState.from_dict(saved["train"])
        for key, obj in objects.items():
            _load(obj, saved["objects"][key])
    elif evaluate is not None:
        _evaluate(ctx, name, ts, evaluate, 0, log)

    def save() -> None:
        ctx.save_checkpoint({"train": ts.to_dict(),
                             "objects": {k: _state(o) for k, o in objects.items()}}, name)

    with ctx.progress(steps, description or name) as advance:
        advance(ts.step)
        while ts.step < steps and not (stop_on_divergence and ts.diverged_at is not None):
            if chunked:
                k = min(every - ts.step % every, steps - ts.step)
                loss = step(ts.step, k)
            else:
                k = 1
                loss = step(ts.step + 1)
            ts.step += k
            _accumulate(ts, loss, k)
            first = ts.diverged_at is None
            if first and ts.loss_sum is not None and not all(map(math.isfinite, ts.loss_sum)):
                ts.diverged_at = ts.step
            stopping = stop_on_divergence and ts.diverged_at is not None
            due = ts.step % every == 0 or ts.step == steps or (stopping and first)
            if due and evaluate is not None:
                _evaluate(ctx, name, ts, evaluate, ts.step, log)
            elif due:
                ts.history.append({"step": ts.step, "train_loss": _mean_loss(ts)})
                ts.loss_sum, ts.loss_count = None, 0
            advance(k)
            if ts.step < steps and not stopping and ctx.checkpoint_due():
                save()
    if ts.diverged_at is not None:
        mark = getattr(ctx, "mark_diverged", None)
        if mark is not None:
            mark(f"{name}: non-finite value at step {ts.diverged_at}")
    save()  # the finished state: a resume after a later crash returns at once
    return FitResult(history=ts.history, steps_done=ts.step, diverged_at=ts.diverged_at)


def _evaluate(ctx: Any, name: str, ts: TrainState, evaluate: Callable[[int], Row], at: int,
              log: bool) -> None:
    row = {"step": at, "train_loss": _mean_loss(ts), **evaluate(at)}
    ts.loss_sum, ts.loss_count = None, 0
    ts.history.append(row)
    if log:
        ctx.log(name, at, **{k: v for k, v in row.items() if k != "step"})
    if ts.diverged_at is None and _has_nonfinite(row):
        ts.diverged_at = at


def _accumulate(ts: TrainState, loss: Any, k: int) -> None:
    if loss is None:
        return
    if isinstance(loss, torch.Tensor):
        vals = loss.detach().double().reshape(-1).cpu().tolist()
    elif isinstance(loss, list | tuple):
        vals = [float(v) for v in loss]
    else:
        vals = [float(loss)]
    if ts.loss_sum is None:
        ts.loss_sum = [0.0] * len(vals)
    ts.loss_sum = [a + b for a, b in zip(ts.loss_sum, vals)]
    ts.loss_count += k


def _mean_loss(ts: TrainState) -> float | list[float] | None:
    if ts.loss_sum is None or ts.loss_count == 0:
        return None
    means = [v / ts.loss_count for v in ts.loss_sum]
    return means[0] if len(means) == 1 else means


def _has_nonfinite(obj: Any) -> bool:
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return False
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, Mapping):
        return any(_has_nonfinite(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(_has_nonfinite(v) for v in obj)
    if isinstance(obj, torch.Tensor):
        return bool(obj.is_floating_point() and not torch.isfinite(obj).all())
    return False


def _state(obj: Any) -> Any:
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, list | tuple):
        return [_state(o) for o in obj]
    if isinstance(obj, dict):
        return {k: v.detach().clone() for k, v in obj.items()}
    return obj.state_dict()


def _load(obj: Any, saved: Any) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(saved)
    elif isinstance(obj, list | tuple):
        for o, s in zip(obj, saved, strict=True):
            _load(o, s)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            v.data.copy_(saved[k])
    else:
        obj.load_state_dict(saved)
