"""Temporary forward hooks (always removed on exit) and a switch that silences gradprobe's own
long-lived hooks (a GradientMonitor's) while a probe or a per-sample re-run calls the model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from torch import nn

_SUSPENDED = [0]


@contextmanager
def forward_hooks(modules: Iterable[nn.Module], hook: Callable, pre: bool = False,
                  with_kwargs: bool = False) -> Iterator[int]:
    """Register `hook` as a forward (or forward-pre) hook on every module; yields their count."""
    register = "register_forward_pre_hook" if pre else "register_forward_hook"
    kw = {"with_kwargs": True} if with_kwargs else {}
    handles = [getattr(m, register)(hook, **kw) for m in modules]
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()


@contextmanager
def suspended() -> Iterator[None]:
    """While inside, `is_suspended()` is True: monitors ignore the forwards and backwards."""
    _SUSPENDED[0] += 1
    try:
        yield
    finally:
        _SUSPENDED[0] -= 1


def is_suspended() -> bool:
    return _SUSPENDED[0] > 0
