"""`GradientMonitorCallback(every=N, ...)` for a Lightning Trainer (extra: gradprobe[lightning]).

    trainer = L.Trainer(callbacks=[GradientMonitorCallback(every=16)], accumulate_grad_batches=4,
                        precision="bf16-mixed")
The monitor is attached to the LightningModule at fit start, counts optimizer steps (so
`accumulate_grad_batches` pools the micro-batches of each step), and logs through the Trainer's
logger (plus any `writer=` given); other keyword arguments are GradientMonitor's.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    import pytorch_lightning as pl  # type: ignore[no-redef]

from gradprobe.diagnosis.monitor import GradientMonitor


class GradientMonitorCallback(pl.Callback):
    """A Lightning callback owning one GradientMonitor for the fit (`self.monitor`)."""

    def __init__(self, every: int = 50, writer: Any = None, **monitor_kwargs: Any) -> None:
        super().__init__()
        self.every, self.writer, self.kwargs = every, writer, monitor_kwargs
        self.monitor: GradientMonitor | None = None
        GradientMonitor._check_every(every)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        opts = trainer.optimizers
        writers = [] if self.writer is None else (
            list(self.writer) if isinstance(self.writer, list | tuple) else [self.writer])
        if trainer.logger is not None:
            logger = trainer.logger

            def log(step: int, scalars: dict[str, float]) -> None:
                logger.log_metrics(scalars, step=step)
            writers.append(log)
        self.monitor = GradientMonitor(pl_module, every=self.every, writer=writers,
                                       optimizer=opts[0] if opts else None, **self.kwargs)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is not None:
            self.monitor.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.on_fit_end(trainer, pl_module)
