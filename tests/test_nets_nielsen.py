"""nets/nielsen.py: B1's nets have the chapter's shapes and inits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradprobe.nets.nielsen import nielsen_net


def test_nielsen_inits_and_shapes():
    g = torch.Generator().manual_seed(0)
    sig = nielsen_net("sigmoid", 4, width=400, n_in=400, generator=g)
    lins = [m for m in sig if isinstance(m, nn.Linear)]
    assert [m.out_features for m in lins] == [400] * 4 + [10]
    assert isinstance(sig[-1], nn.Sigmoid) and sig[0].weight.dtype == torch.float64
    assert float(lins[1].weight.detach().var()) == pytest.approx(1 / 400, rel=0.05)  # N(0, 1/n_in)
    assert float(lins[1].bias.detach().var()) == pytest.approx(1.0, rel=0.3)  # N(0, 1) biases
    relu = nielsen_net("relu", 2, width=400, n_in=400, generator=g)
    rl = [m for m in relu if isinstance(m, nn.Linear)]
    assert float(rl[1].weight.detach().var()) == pytest.approx(2 / 400, rel=0.05)  # He
    assert float(rl[1].bias.detach().abs().max()) == 0.0
    with pytest.raises(ValueError):
        nielsen_net("gelu", 2)
