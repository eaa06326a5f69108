"""Shared figure helpers: a non-interactive backend, one style, atomic PNG saves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "figure.dpi": 110, "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "font.size": 9,
    "legend.fontsize": 8, "legend.frameon": False,
})

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def figure(nrows: int = 1, ncols: int = 1, width: float = 5.0, height: float = 3.6,
           **kw: Any) -> tuple[Any, Any]:
    """A figure of nrows×ncols panels, each `width`×`height` inches; returns (fig, axes)."""
    kw.setdefault("squeeze", False)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kw)
    return fig, axes


def save(fig: Any, path: Path | str) -> Path:
    """Save fig as PNG atomically (runs.atomic.atomic_path: temp file + rename) and close it."""
    from gradprobe.runs.atomic import atomic_path

    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
