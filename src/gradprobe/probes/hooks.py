"""Temporary forward hooks: registered on entry, always removed on exit (even on error)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def forward_hooks(modules: Iterable[nn.Module], hook: Callable, pre: bool = False) -> Iterator[int]:
    """Register `hook` as a forward (or forward-pre) hook on every module; yields their count."""
    register = "register_forward_pre_hook" if pre else "register_forward_hook"
    handles = [getattr(m, register)(hook) for m in modules]
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()
