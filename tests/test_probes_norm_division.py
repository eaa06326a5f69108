"""probes/norm_division.py: E[1/s²] per BN layer against the variances computed by hand."""

from __future__ import annotations

import pytest
import torch

from gradprobe.nets.mlp import MLP
from gradprobe.nets.norm import calibrate
from gradprobe.probes.norm_division import inverse_variances


def test_inverse_variances_by_hand():
    g = torch.Generator().manual_seed(0)
    m = MLP([3, 5, 4, 1], "relu", norm="bn", init="he", generator=g).double()
    x = torch.randn(32, 3, generator=g, dtype=torch.float64)
    got = inverse_variances(m, x)
    with torch.no_grad():
        h1, h2 = m[0](x), m[3](m[2](m[1](m[0](x))))
    v1, v2 = h1.var(0, unbiased=False), h2.var(0, unbiased=False)
    assert got == pytest.approx([float((1 / (v + 1e-5)).mean()) for v in (v1, v2)])
    calibrate(m, x)  # frozen layers report their stored statistics, whatever the batch
    assert inverse_variances(m, x[:2]) == pytest.approx(got)
    centred = MLP([3, 5, 1], "relu", norm="center", generator=g).double()
    assert inverse_variances(centred, x) == []  # centring divides by nothing
