"""Atomic file writes: write a temp file beside the target, then rename over it."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(clean_json(obj), indent=2) + "\n").encode())


def clean_json(obj: Any, strict: bool = True) -> Any:
    """Make obj JSON: tuples become lists, numpy/torch values floats; with strict, NaN/Inf become
    None (summary.json is strict JSON); without, they are kept (stage files, so that a staged
    NaN still marks the run as diverged)."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v, strict) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v, strict) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if hasattr(obj, "tolist"):  # numpy arrays/scalars, torch tensors
        return clean_json(obj.tolist(), strict)
    try:
        f = float(obj)
    except (TypeError, ValueError):
        return str(obj)
    return f if math.isfinite(f) or not strict else None


def has_nonfinite(obj: Any) -> bool:
    """True when any number inside obj is NaN or ±Inf."""
    if isinstance(obj, dict):
        return any(has_nonfinite(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(has_nonfinite(v) for v in obj)
    if hasattr(obj, "tolist") and not isinstance(obj, float | int):
        return has_nonfinite(obj.tolist())
    if isinstance(obj, float):
        return not math.isfinite(obj)
    return False
