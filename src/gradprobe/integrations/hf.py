"""`GradientMonitorCallback(every=N, ...)` for a Hugging Face `Trainer` (pip install gradprobe[hf]).

    trainer = Trainer(model, args, train_dataset=ds, callbacks=[GradientMonitorCallback(every=16,
                      writer="grads.jsonl")])
The monitor is attached to the model at train start and counts optimizer steps, so
`gradient_accumulation_steps` pools each step's micro-batches; other keyword arguments are
GradientMonitor's. Values are written to `writer` and kept in `callback.monitor.history`.
The Trainer divides each micro-batch's loss by the accumulation steps unless the model's forward
takes **kwargs (it then expects the model to normalise by `num_items_in_batch`); a model that
takes **kwargs but ignores it (BertForSequenceClassification in transformers 5) steps on the sum
of the micro-batch means: pass `accumulation="sum"` then, or the variance is k² too large.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from gradprobe.diagnosis.monitor import GradientMonitor


class GradientMonitorCallback(TrainerCallback):
    """A transformers TrainerCallback owning one GradientMonitor for the run (`self.monitor`)."""

    def __init__(self, every: int = 50, writer: Any = None, **monitor_kwargs: Any) -> None:
        self.every, self.writer, self.kwargs = every, writer, monitor_kwargs
        self.monitor: GradientMonitor | None = None
        GradientMonitor._check_every(every)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       optimizer: Any = None, **kw: Any) -> None:
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
        self.monitor = GradientMonitor(model, every=self.every, writer=self.writer,
                                       optimizer=inner, **self.kwargs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.monitor is not None:
            self.monitor.close()
