"""nets/scalar_nets.py: the 1-D nets of SPEC C1/C3 have the documented structure and scales."""

from __future__ import annotations

import math

import pytest
import torch

from gradprobe.nets.norm import FrozenNorm
from gradprobe.nets.scalar_nets import first_layer_std, scalar_feedforward, scalar_resnet


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_first_layer_std():
    assert first_layer_std("unit", 200) == 1.0
    assert first_layer_std("lecun", 100) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        first_layer_std("he", 10)  # type: ignore[arg-type]


def test_feedforward_layers_and_scales():
    m = scalar_feedforward(3, 400, "center", _g())
    linears = [x for x in m if isinstance(x, torch.nn.Linear)]
    norms = [x for x in m if isinstance(x, FrozenNorm)]
    assert len(linears) == 4 and len(norms) == 2  # no norm on the scalar-input layer
    assert linears[0].weight.std().item() == pytest.approx(1 / math.sqrt(400), rel=0.15)
    assert linears[1].weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.05)
    assert linears[-1].weight.std().item() == pytest.approx(1 / math.sqrt(400), rel=0.15)
    assert m(torch.zeros(5, 1)).shape == (5, 1)


def test_resnet_depth_counts_weight_layers():
    m = scalar_resnet(5, 0.1, 300, _g(), embed_std=0.5)
    assert len(m.blocks) == 4  # depth − 1 blocks after the first layer
    assert isinstance(m.embed[1], torch.nn.Identity)  # linear first layer by default
    assert m.embed[0].weight.std().item() == pytest.approx(0.5, rel=0.2)
    assert m.embed[0].bias.std().item() == pytest.approx(0.5, rel=0.2)
    relu = scalar_resnet(5, 0.1, 30, _g(), embed_relu=True)
    assert isinstance(relu.embed[1], torch.nn.ReLU)
