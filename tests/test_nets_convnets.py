"""nets/convnets.py: thin convnets, stage plans and parameter parity (SPEC C4–C5)."""

from __future__ import annotations

import pytest
import torch

from gradprobe.nets.convnets import MODELS, build_model, crelu_widths, n_params, stage_plan


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_stage_plan_and_parameter_parity():
    plan = stage_plan(52, (8, 16, 32, 64))
    assert len(plan) + 2 == 52  # first conv + plan + FC
    assert [s for _, s in plan].count(2) == 3
    assert crelu_widths((8, 16, 32, 64)) == (6, 11, 23, 45)  # SPEC C5
    with pytest.raises(ValueError):
        stage_plan(11, (8, 16, 32, 64))
    relu = n_params(build_model("relu", 52, (1, 16, 16)))
    for name in MODELS:
        m = build_model(name, 52, (1, 16, 16), generator=gen(0))
        assert abs(n_params(m) / relu - 1) < 0.01, name  # parameter parity within 1%
        convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
        assert len(convs) + 1 == 52
        assert m(torch.randn(3, 1, 16, 16, generator=gen(1))).shape == (3, 10)
    assert build_model("resnet", 12, (3, 32, 32))(torch.randn(2, 3, 32, 32)).shape == (2, 10)
