"""Linear-periodic targets (SPEC A3) and the shared slope fit."""

from __future__ import annotations

import math

import pytest
import torch

from gradprobe.tasks.periodic import periodic_targets, sample_directions
from gradprobe.theory.parity import fit_slope


def test_periodic_targets_and_slope() -> None:
    v = sample_directions(4, 6, 2.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(v.norm(dim=1), torch.full((4,), 2.5))
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(periodic_targets(v)(x), torch.cos(v @ x.T))
    tri = periodic_targets(v, "triangle")(x)
    assert tri.abs().max() <= 1
    assert fit_slope([1, 2, 3], [3, 1, -1]) == pytest.approx(-2)
    assert math.isnan(fit_slope([1], [1]))
