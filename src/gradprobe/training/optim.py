"""Optimisers and learning-rate schedules the experiments train with (DESIGN "Version 0.2").

Each schedule keeps its state in plain numbers behind `state_dict` / `load_state_dict`, so
training/fit.py checkpoints it like a module.
"""

from __future__ import annotations

from typing import Any

import torch


# ---- SPEC C5 (looks_linear): the plateau schedule ----------------------------------------------
class Plateau:
    """Plateau schedule after Balduzzi et al. 2017 §6's auto-scheduler.

    Every measurement (`step(loss, opt)`) is the mean training loss since the last one. When the
    relative decrease (old − new)/|old| over the last `window` measurements stays below
    `threshold` for `patience` measurements in a row, every param group's lr is multiplied by
    `factor` and the window restarts from the current measurement.
    """

    def __init__(self, window: int, patience: int, threshold: float, factor: float) -> None:
        if window < 1 or patience < 1:
            raise ValueError("window and patience must be ≥ 1")
        if not 0 < factor < 1:
            raise ValueError("factor must be in (0, 1)")
        self.window, self.patience = int(window), int(patience)
        self.threshold, self.factor = float(threshold), float(factor)
        self.history: list[float] = []
        self.bad = 0
        self.drops = 0

    def step(self, loss: float, opt: torch.optim.Optimizer) -> None:
        self.history.append(float(loss))
        if len(self.history) <= self.window:
            return
        old = self.history[-1 - self.window]
        rate = (old - loss) / max(abs(old), 1e-12)
        self.bad = self.bad + 1 if rate < self.threshold else 0
        if self.bad >= self.patience:
            for group in opt.param_groups:
                group["lr"] *= self.factor
            self.bad = 0
            self.drops += 1
            self.history = self.history[-1:]

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "bad": self.bad, "drops": self.drops}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.history, self.bad, self.drops = list(s["history"]), int(s["bad"]), int(s["drops"])
