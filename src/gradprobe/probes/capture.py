"""One forward and one backward of a batch loss, with every unit call's inputs and output gradients.

`capture(model, units, loss_fn, x, y)` runs `loss_fn(model(x), y)` (x a dict: passed as keyword
arguments), records each call of each unit (gradprobe.probes.units) in call order, and takes the
gradient of the batch loss with respect to every recorded output, the model's main output and the
parameters, in one autograd call. A loss returning one value per sample is averaged. Per-sample
output gradients follow as ∂ℓ_i/∂z_i = ∂L/∂z_i / c (c = 1/B for a mean, 1 for a sum), exact when
the samples do not interact in the forward pass (gradprobe.probes.state.sample_independent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from gradprobe.probes.hooks import forward_hooks, suspended
from gradprobe.probes.inputs import call_model, main_output
from gradprobe.probes.naming import CallNamer
from gradprobe.probes.units import Unit


@dataclass
class Call:
    """One call of a unit: key (`name` or `name#k`), the unit, its detached (args, kwargs),
    its floating-point outputs and, after the backward, ∂L/∂ each output (None: unused)."""

    key: str
    name: str
    unit: Unit
    cap: tuple[tuple, dict]
    outs: list[Tensor]
    gouts: list[Tensor | None] = field(default_factory=list)


@dataclass
class Captured:
    """calls in forward order; loss (the batch loss); output (the model's output) and out
    (its main tensor: itself, `logits`, or the first tensor) with ∂L/∂out; param_grads
    {parameter name: ∂L/∂θ}; finite: whether loss and every gradient are finite."""

    calls: list[Call]
    loss: float
    output: Any
    out: Tensor | None
    gout: Tensor | None
    param_grads: dict[str, Tensor]


def _detach(v: Any) -> Any:
    return v.detach() if isinstance(v, Tensor) else v


def capture(model: nn.Module, units: dict[str, Unit], loss_fn: Callable[[Any, Any], Tensor],
            x: Any, y: Any, reduction: str = "mean") -> Captured:
    """Run the batch loss once and differentiate it (see the module docstring)."""
    by_module = {id(u.module): name for name, u in units.items()}
    namer = CallNamer()
    calls: list[Call] = []

    def hook(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        name = by_module[id(m)]
        leaves, _ = tree_flatten(output)
        outs = [t for t in leaves if isinstance(t, Tensor) and t.is_floating_point()]
        if not any(t.requires_grad for t in outs):
            return
        cap = (tuple(_detach(a) for a in args), {k: _detach(v) for k, v in kwargs.items()})
        c = Call(namer(name), name, units[name], cap, outs, [None] * len(outs))
        calls.append(c)
        for j, t in enumerate(outs):  # tensor hooks see ∂L/∂t even if t is changed in place
            if t.requires_grad:
                t.register_hook(_store(c.gouts, j))

    mods = list({id(u.module): u.module for u in units.values()}.values())
    gout: list[Tensor | None] = [None]
    with suspended(), forward_hooks(mods, hook, with_kwargs=True), torch.enable_grad():
        output = call_model(model, x)
        out = main_output(output)
        if out is not None and out.requires_grad:
            out.register_hook(_store(gout, 0))
        loss = loss_fn(output, y)
        if not isinstance(loss, Tensor):
            raise TypeError(f"loss_fn must return a tensor, got {type(loss).__name__}")
        if loss.dim() > 0:
            loss = loss.mean() if reduction == "mean" else loss.sum()
        named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True) \
            if named and loss.requires_grad else [None] * len(named)
    pg = {k: (torch.zeros_like(p) if gr is None else gr.detach())
          for (k, p), gr in zip(named, grads, strict=True)}
    return Captured(calls, float(loss.detach()), output, out, gout[0], pg)


def _store(slots: list, j: int) -> Callable[[Tensor], None]:
    def h(g: Tensor) -> None:
        slots[j] = g.detach()
    return h
