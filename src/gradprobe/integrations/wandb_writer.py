"""A Weights & Biases writer for GradientMonitor: `writer=WandbWriter(run)` or simply
`writer=wandb.init(...)` (offline mode works: WANDB_MODE=offline). pip install wandb."""

from __future__ import annotations

from typing import Any

from gradprobe.diagnosis.writers import WandbSink


def WandbWriter(run: Any = None, **init_kwargs: Any) -> WandbSink:
    """A sink logging to `run` (default: `wandb.init(**init_kwargs)`)."""
    if run is None:
        import wandb

        run = wandb.init(**init_kwargs)
    return WandbSink(run)
