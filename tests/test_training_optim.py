"""training/optim.py: the plateau schedule (SPEC C5)."""

from __future__ import annotations

import pytest
import torch

from gradprobe.training.optim import Plateau


def test_plateau_schedule_drops_only_on_a_plateau():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0)
    sched = Plateau(window=2, patience=2, threshold=0.05, factor=0.1)
    for loss in (2.0, 1.5, 1.1, 0.8, 0.6):  # falling fast: no drop
        sched.step(loss, opt)
    assert opt.param_groups[0]["lr"] == 1.0 and sched.drops == 0
    for loss in (0.6, 0.6, 0.6):  # flat: a drop after `patience` slow measurements
        sched.step(loss, opt)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1) and sched.drops == 1
    state = sched.state_dict()
    other = Plateau(window=2, patience=2, threshold=0.05, factor=0.1)
    other.load_state_dict(state)
    assert other.state_dict() == state
