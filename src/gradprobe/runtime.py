"""Device choice, thread count and seed derivation, decided once per process."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from typing import Any

import torch

from gradprobe.errors import UsageError

DEFAULT_THREADS = 1  # measured best on the shared 2-core CPU; see BENCHMARKS.md


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA when present, else CPU; 'cuda' without CUDA is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


MAX_THREADS = 1024
DEFAULT_CHECKPOINT_EVERY_S = 30.0


def _env_number(name: str, parse: type, ok: Callable[[Any], bool], valid: str,
                default: Any) -> Any:
    """$name parsed with `parse` and checked with `ok`, default when unset or blank; anything
    else is a UsageError naming the variable and what is valid."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise UsageError(f"{name}={raw[:40]!r} is not valid; set {valid} or unset it")
    return value


def threads_from_env() -> int:
    """$GRADPROBE_THREADS: a whole number in 1..MAX_THREADS (default DEFAULT_THREADS)."""
    return _env_number("GRADPROBE_THREADS", int, lambda n: 1 <= n <= MAX_THREADS,
                       f"a whole number from 1 to {MAX_THREADS}", DEFAULT_THREADS)


def checkpoint_every_from_env() -> float:
    """$GRADPROBE_CHECKPOINT_EVERY in seconds: a finite number ≥ 0 (default 30; 0 saves at
    every chance)."""
    return _env_number("GRADPROBE_CHECKPOINT_EVERY", float,
                       lambda s: math.isfinite(s) and s >= 0,
                       "a number of seconds ≥ 0 (default 30)", DEFAULT_CHECKPOINT_EVERY_S)


def check_env() -> None:
    """Validate every GRADPROBE_* variable up front, before anything is written."""
    threads_from_env()
    checkpoint_every_from_env()


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads from n, else $GRADPROBE_THREADS, else DEFAULT_THREADS."""
    if n is None:
        n = threads_from_env()
    if not 1 <= n <= MAX_THREADS:
        raise UsageError(f"--threads {n} is not valid; choose 1 to {MAX_THREADS}")
    torch.set_num_threads(n)
    return torch.get_num_threads()


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from (seed, keys): independent streams for each key, stable across runs."""
    text = repr((int(seed),) + tuple(str(k) for k in keys)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def generator(seed: int, *keys: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded with derive_seed(seed, *keys)."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *keys))
    return g
