"""Atomic file writes: write a temp file beside the target, then rename over it.

Temp files are named `.<name>.<random>.tmp`; a process killed between the write and the rename
leaves one behind, which `clean_temp_files` removes on the next run. Files end with the mode a
plain `open()` would give them (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block ends without error the temp file is
    synced, given the user's umask mode and renamed over `path`; on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Write data to path atomically (see atomic_path)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def clean_temp_files(directory: Path) -> list[Path]:
    """Remove temp files left by killed writers (`.<name>.<random>.tmp`) in directory and its
    subdirectories; returns what was removed."""
    removed = []
    for p in Path(directory).rglob(f".*{TEMP_SUFFIX}"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def checksum(data: bytes) -> str:
    """sha256 hex digest: stage files and checkpoints carry one of their payload."""
    return hashlib.sha256(data).hexdigest()


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
