"""Activation and co-activation statistics of ReLU-like layers (Balduzzi et al. 2017, Figs. 3–4).

A unit is active on an input when its pre-activation (the input of the ReLU-like module) is > 0.
Collected with forward hooks, so any nn.Module works as long as its nonlinearities are modules
(not functional calls); pass `modules` to choose them by hand. ReLU-like: torch's rectifiers,
GELU, SiLU, Mish, ..., and Hugging Face's activation modules (`NewGELUActivation`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradprobe.probes.hooks import forward_hooks
from gradprobe.probes.inputs import call_model
from gradprobe.probes.naming import CallNamer, module_names

RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU,
             nn.GELU, nn.SiLU, nn.Softplus, nn.Mish, nn.Hardswish)
_HF_WORDS = ("GELU", "SiLU", "Swish", "Mish", "ReLU")


def is_relu_like(m: nn.Module) -> bool:
    """A rectifier-like activation module: torch's (RELU_LIKE) or a Hugging Face one."""
    if isinstance(m, RELU_LIKE):
        return True
    cls = type(m)
    return cls.__module__.startswith("transformers.") and cls.__name__.endswith("Activation") \
        and any(w in cls.__name__ for w in _HF_WORDS)


@dataclass(frozen=True)
class ActivityStats:
    """Per hooked layer (L of them, in call order), over n inputs taken in the given order.

    names: (L,) module names (a module called twice appears twice, suffixed #k).
    activation: (L,) fraction of (input, unit) pairs with the unit active.
    coactivation: (L,) mean over units of the fraction of distinct input pairs on which the unit
        is active for both: k(k−1)/(n(n−1)) for a unit active on k inputs.
    unit_activation: L tensors (units,): per-unit fraction of inputs it is active on (histograms).
    mean_run_length: (L,) mean length of the runs of equal activation along the input order
        (contiguity of a raster row), pooled over all runs of all units.
    run_length_counts: L tensors (n + 1,): number of runs of each length.
    patterns: L bool tensors (n, units), or None unless keep_patterns (for raster plots).
    """

    names: tuple[str, ...]
    activation: Tensor
    coactivation: Tensor
    unit_activation: tuple[Tensor, ...]
    mean_run_length: Tensor
    run_length_counts: tuple[Tensor, ...]
    patterns: tuple[Tensor, ...] | None


def run_lengths(pattern: Tensor) -> Tensor:
    """Lengths of runs of equal values along dim 0 of a (n, units) tensor, all units pooled."""
    rows = pattern.T.contiguous()  # (units, n)
    u, n = rows.shape
    start = torch.ones_like(rows, dtype=torch.bool)
    start[:, 1:] = rows[:, 1:] != rows[:, :-1]
    idx = torch.nonzero(start.reshape(-1)).squeeze(1)
    ends = torch.cat([idx[1:], torch.tensor([u * n], device=idx.device)])
    return ends - idx


def summarise(pattern: Tensor) -> tuple[float, float, Tensor, float, Tensor]:
    """(activation, coactivation, per-unit fractions, mean run length, run-length counts)."""
    n = pattern.shape[0]
    p = pattern.float()
    k = p.sum(0)
    unit = k / n
    coact = (k * (k - 1) / (n * (n - 1))).mean() if n > 1 else torch.tensor(float("nan"))
    lengths = run_lengths(pattern)
    counts = torch.bincount(lengths, minlength=n + 1)
    return float(p.mean()), float(coact), unit, float(lengths.float().mean()), counts


@torch.no_grad()
def activity(
    model: nn.Module,
    inputs: Any,
    modules: list[nn.Module] | None = None,
    keep_patterns: bool = False,
) -> ActivityStats:
    """Activation statistics of every ReLU-like module (or of `modules`) on `inputs` (n, ...;
    a dict is passed as keyword arguments)."""
    names_of = module_names(model)
    namer = CallNamer()
    chosen = modules if modules is not None else [m for m in model.modules() if is_relu_like(m)]
    if not chosen:
        raise ValueError("no ReLU-like module found; pass `modules`")
    records: list[tuple[str, Tensor]] = []

    def hook(mod: nn.Module, args: tuple, _out: Tensor) -> None:
        pre = args[0]
        records.append((namer(names_of.get(mod, type(mod).__name__)),
                        (pre > 0).reshape(pre.shape[0], -1).cpu()))

    with forward_hooks(chosen, hook):
        call_model(model, inputs)
    stats = [summarise(p) for _, p in records]
    return ActivityStats(
        names=tuple(n for n, _ in records),
        activation=torch.tensor([s[0] for s in stats]),
        coactivation=torch.tensor([s[1] for s in stats]),
        unit_activation=tuple(s[2] for s in stats),
        mean_run_length=torch.tensor([s[3] for s in stats]),
        run_length_counts=tuple(s[4] for s in stats),
        patterns=tuple(p for _, p in records) if keep_patterns else None,
    )
