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


def test_bottleneck_nets_have_equal_size_and_two_convs_per_skip():
    """Our reading of §5's paper nets: FF and resnet of one depth share every layer; only the
    skip differs (so with β → 0 the resnet block is the identity)."""
    from gradprobe.nets.convnets import BottleneckNet, BottleneckPair, shattering_net

    for d in (2, 10):
        ff = shattering_net("feedforward", d, (3, 32, 32), width=64, architecture="bottleneck",
                            generator=gen(0))
        rn = shattering_net("resnet", d, (3, 32, 32), width=64, architecture="bottleneck",
                            generator=gen(0))
        assert isinstance(ff, BottleneckNet) and n_params(ff) == n_params(rn)
        convs = [m for m in rn.blocks.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == d and [c.kernel_size for c in convs[:2]] == [(1, 1), (3, 3)]
        assert ff(torch.randn(4, 3, 32, 32, generator=gen(1))).shape == (4, 10)
    # 12,618 parameters at depth 2 on CIFAR: stem 3·64·9, pair 64·16 + 16·64·9, FC 64·10 + 10
    assert n_params(shattering_net("resnet", 2, (3, 32, 32), width=64,
                                   architecture="bottleneck")) == 1728 + 1024 + 9216 + 650
    pair = BottleneckPair(8, 2, "frozen", residual=True, beta=0.0)
    x = torch.randn(5, 8, 6, 6, generator=gen(2))
    torch.testing.assert_close(pair(x), x)
    with pytest.raises(ValueError):
        shattering_net("resnet", 4, (1, 8, 8), architecture="wide")
