"""Shared figure helpers: a non-interactive backend, one style, atomic PNG saves.

matplotlib is imported on the first call, not when this module is imported, so that
`import gradprobe` and `gradprobe list` stay light (experiments import this at module level).
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

# matplotlib's default colour cycle ("tab10"), named here so that importing needs no matplotlib
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf"]


@cache
def pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend and the project's style (imported once)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 9,
        "legend.fontsize": 8, "legend.frameon": False,
    })
    return plt


def figure(nrows: int = 1, ncols: int = 1, width: float = 5.0, height: float = 3.6,
           **kw: Any) -> tuple[Any, Any]:
    """A figure of nrows×ncols panels, each `width`×`height` inches; returns (fig, axes)."""
    kw.setdefault("squeeze", False)
    fig, axes = pyplot().subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kw)
    return fig, axes


def save(fig: Any, path: Path | str) -> Path:
    """Save fig as PNG atomically (temp file + rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.tight_layout()
        fig.savefig(tmp, format="png")
        mask = os.umask(0o022)  # mkstemp made it 0600; give it the mode open() would
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    finally:
        pyplot().close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path
