"""Finds every experiment module in this package (each defines EXPERIMENT), in SPEC-id order."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from functools import cache

from gradprobe.errors import UsageError
from gradprobe.experiments.base import Experiment

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
    return dict(sorted(found.items(), key=lambda kv: (spec_key(kv[1].spec), kv[0])))


def spec_key(spec: str) -> tuple[str, int]:
    """Sort key of a SPEC id: 'A9' before 'A10', parts in letter order."""
    letters = spec.rstrip("0123456789")
    digits = spec[len(letters):]
    return (letters, int(digits) if digits else 0)


def get(name: str) -> Experiment:
    """The experiment called `name`, or a UsageError listing the valid names."""
    exps = experiments()
    if name not in exps:
        raise UsageError(f"unknown experiment {name!r}; choose one of: {', '.join(exps)}")
    return exps[name]
