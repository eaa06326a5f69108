"""Leave a model exactly as it was found, and make its samples independent while probing it.

`preserved(model)` snapshots every module's train/eval flag, every buffer (values and identity,
including BatchNorm running statistics and `num_batches_tracked`), every parameter's `.grad`
(identity) and the torch RNG states, and puts them all back on exit, even after an error.

`sample_independent(model, x)` (inside `preserved`) makes per-sample quantities well defined:
every module in train mode except BatchNorm is put in eval mode (dropout off, including the
functional dropout of attention layers keyed on their own `.training`, as in Hugging Face models),
and BatchNorm layers in train mode get the statistics of the batch x
computed once and frozen (Balduzzi et al. 2017, §3 and SPEC C1: "compute the statistics over
the batch, then freeze them"). The frozen model's output on x equals the train-mode output exactly;
only the derivative through the batch statistics is left out of per-sample gradients.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from gradprobe.probes.hooks import forward_hooks
from gradprobe.probes.inputs import call_model


@contextmanager
def preserved(model: nn.Module) -> Iterator[None]:
    """Restore modes, buffers, .grad and RNG states of `model` on exit."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = []
    for m in model.modules():
        for key, buf in m._buffers.items():
            buffers.append((m, key, buf, None if buf is None else buf.detach().clone()))
    grads = [(p, p.grad) for p in model.parameters()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            for m, mode in modes:
                m.training = mode
            for m, key, buf, copy in buffers:
                m._buffers[key] = buf
                if buf is not None:
                    with torch.no_grad():
                        buf.copy_(copy)
            for p, gr in grads:
                p.grad = gr
            for p, fl in flags:
                p.requires_grad_(fl)


def _batch_stats(model: nn.Module, bns: list[_BatchNorm], x: Tensor) -> dict:
    """{bn: (mean, biased var)} of each train-mode BatchNorm's input on the batch x."""
    stats: dict = {}

    def hook(m: nn.Module, args: tuple) -> None:
        inp = args[0].detach()
        dims = [0] + list(range(2, inp.dim()))
        stats[m] = (inp.mean(dims), inp.var(dims, unbiased=False))

    with forward_hooks(bns, hook, pre=True), torch.no_grad():
        call_model(model, x)
    return stats


def sample_independent(model: nn.Module, x: Any) -> list[str]:
    """Switch dropout off and freeze train-mode BatchNorm at x's statistics (call inside
    `preserved`, which undoes it). Returns notes saying what was changed."""
    notes = []
    train = [m for m in model.modules() if m.training and not isinstance(m, _BatchNorm)]
    drops = [m for m in train if isinstance(m, nn.modules.dropout._DropoutNd)
             or (isinstance(m, nn.MultiheadAttention) and m.dropout > 0)]
    custom = [m for m in train if not type(m).__module__.startswith("torch.")]
    for m in train:
        m.training = False
    if drops or custom:
        notes.append(f"train-mode modules put in eval mode while probing: dropout off in "
                     f"{len(drops)} module(s); {len(custom)} other module(s) whose behaviour "
                     "may depend on .training (e.g. functional attention dropout)")
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.training]
    if bns:
        stats = _batch_stats(model, bns, x)
        for bn in bns:
            if bn not in stats:
                continue
            mean, var = stats[bn]
            bn.training = False
            for key, val in (("running_mean", mean), ("running_var", var)):
                if bn._buffers.get(key) is None:
                    bn._buffers[key] = val
                else:
                    bn._buffers[key] = val.to(bn._buffers[key].dtype)
        notes.append(f"batch norm in train mode ({len(bns)} layer(s)): statistics of this batch, "
                     "frozen (per-sample gradients leave out the path through them)")
    return notes
