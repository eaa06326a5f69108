"""The A1 net: shapes and the truncated-normal fan-in init."""

from __future__ import annotations

import torch

from gradprobe.nets.parity import parity_net


def test_net_shape_and_init() -> None:
    net = parity_net(7, torch.Generator().manual_seed(0))
    w1, b1, w2, b2 = (p.detach() for p in net.parameters())
    assert w1.shape == (70, 7) and w2.shape == (1, 70)
    assert torch.all(b1 == 0) and torch.all(b2 == 0)
    assert w1.abs().max() <= 2 / 7**0.5 + 1e-6  # truncated at ±2 std, std 1/sqrt(fan_in)
    assert 0.7 < float(w1.std() * 7**0.5) < 1.0  # a ±2σ-truncated normal has std 0.88σ
