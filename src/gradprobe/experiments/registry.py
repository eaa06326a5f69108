"""Finds every experiment module in this package (each defines EXPERIMENT) in SPEC order."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from functools import cache

from gradprobe.errors import UsageError
from gradprobe.experiments.base import Experiment

# SPEC order, used for listing and for `reproduce`; modules not named here come after, sorted.
ORDER = (
    "parity", "parity_variance", "linear_periodic", "end_to_end", "snr", "noise_decomposition",
    "pwl", "flat_activation", "vanishing", "shattered_1d", "shattered_theory", "activations",
    "convnet_shattering", "looks_linear", "remedies", "signal_propagation",
)
_NOT_EXPERIMENTS = {"base", "registry"}
BROKEN: dict[str, str] = {}  # module name → import error, for tests and `list`


@cache
def experiments() -> dict[str, Experiment]:
    """Name → Experiment for every module that defines EXPERIMENT."""
    import gradprobe.experiments as pkg

    found: dict[str, Experiment] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in _NOT_EXPERIMENTS or info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"gradprobe.experiments.{info.name}")
        except Exception as e:  # one broken module must not hide the others; tests catch it
            BROKEN[info.name] = f"{type(e).__name__}: {e}"
            print(f"gradprobe: warning: experiment module {info.name!r} failed to import: "
                  f"{BROKEN[info.name]}", file=sys.stderr)
            continue
        exp = getattr(module, "EXPERIMENT", None)
        if isinstance(exp, Experiment):
            found[exp.name] = exp
    rank = {n: i for i, n in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0])))


def get(name: str) -> Experiment:
    """The experiment called `name`, or a UsageError listing the valid names."""
    exps = experiments()
    if name not in exps:
        raise UsageError(f"unknown experiment {name!r}; choose one of: {', '.join(exps)}")
    return exps[name]
