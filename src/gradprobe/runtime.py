"""Device choice, thread count and seed derivation, decided once per process."""

from __future__ import annotations

import hashlib
import os

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


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads from n, else $GRADPROBE_THREADS, else DEFAULT_THREADS."""
    if n is None:
        n = int(os.environ.get("GRADPROBE_THREADS", DEFAULT_THREADS))
    torch.set_num_threads(max(1, n))
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
