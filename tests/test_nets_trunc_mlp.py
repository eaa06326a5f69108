"""nets.trunc_mlp: layer layout (linear code and output) and the fan-in truncated init."""

from __future__ import annotations

import torch
from torch import nn

from gradprobe.nets.trunc_mlp import trunc_mlp


def test_layout_and_init() -> None:
    sizes = (40, 500, 100, 6, 100, 100, 40)
    net = trunc_mlp(sizes, torch.Generator().manual_seed(0), linear_layers=(2,))
    kinds = [type(m) for m in net]
    lin, relu = nn.Linear, nn.ReLU
    assert kinds == [lin, relu, lin, relu, lin, lin, relu, lin, relu, lin]  # code & out linear
    first = net[0]
    w = first.weight.detach()
    assert w.shape == (500, 40) and torch.all(first.bias == 0)
    std = 1 / 40 ** 0.5
    assert w.abs().max() <= 2 * std + 1e-7  # truncated at ±2 std
    assert abs(float(w.std()) - 0.88 * std) < 0.05 * std  # trunc-normal's std
    assert net(torch.zeros(3, 40)).shape == (3, 40)
