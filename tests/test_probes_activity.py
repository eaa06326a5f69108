"""Activation statistics via forward hooks on a hand-built net with a known answer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradprobe.probes.activity import activity, run_lengths
from gradprobe.theory.shattering import coactivation_from_activation


def hand_net() -> nn.Module:
    """x ∈ R (a grid of 8 points −3.5…3.5). Layer 1: units x, −x, 1, −1 (pre-activations);
    layer 2: units h1 + h2 − 1 = |x| − 1 and h3 (= 1)."""
    l1 = nn.Linear(1, 4)
    l2 = nn.Linear(4, 2)
    with torch.no_grad():
        l1.weight.copy_(torch.tensor([[1.0], [-1.0], [0.0], [0.0]]))
        l1.bias.copy_(torch.tensor([0.0, 0.0, 1.0, -1.0]))
        l2.weight.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]))
        l2.bias.copy_(torch.tensor([-1.0, 0.0]))
    return nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), nn.Linear(2, 1))


def test_activity_on_hand_built_net():
    x = torch.linspace(-3.5, 3.5, 8).unsqueeze(1)  # −3.5 … 3.5, step 1
    model = hand_net()
    model.train()
    st = activity(model, x, keep_patterns=True)
    assert st.names == ("1", "3")
    # layer 1: x>0 on 4/8, −x>0 on 4/8, 1>0 always, −1>0 never
    torch.testing.assert_close(st.unit_activation[0], torch.tensor([0.5, 0.5, 1.0, 0.0]))
    assert st.activation[0] == pytest.approx(0.5)
    # co-activation per unit: k(k−1)/(n(n−1)): 4·3/56, 4·3/56, 1, 0
    assert st.coactivation[0] == pytest.approx((12 / 56 * 2 + 1) / 4)
    # run lengths along the grid: x>0: 4+4; −x>0: 4+4; const: 8; const: 8 → mean 32/6
    assert st.mean_run_length[0] == pytest.approx(32 / 6)
    assert st.run_length_counts[0][4] == 4 and st.run_length_counts[0][8] == 2
    # layer 2: |x| − 1 > 0 for |x| ∈ {1.5, 2.5, 3.5}: 6/8; second unit always on
    torch.testing.assert_close(st.unit_activation[1], torch.tensor([0.75, 1.0]))
    assert st.mean_run_length[1] == pytest.approx(16 / 4)  # runs 3, 2, 3 and 8
    assert st.patterns is not None and st.patterns[1].shape == (8, 2)
    # hooks removed, mode untouched
    assert all(not m._forward_hooks for m in model.modules()) and model.training


def test_coactivation_formula_matches_probe():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 50), nn.ReLU())
    x = torch.randn(40, 3, generator=g)
    st = activity(model, x)
    n = x.shape[0]
    expect = torch.tensor([coactivation_from_activation(float(p), n)
                           for p in st.unit_activation[0]]).mean()
    assert st.coactivation[0] == pytest.approx(float(expect), rel=1e-5)


def test_run_lengths_and_errors():
    p = torch.tensor([[1, 0], [1, 0], [0, 0], [1, 1]], dtype=torch.bool)
    assert sorted(run_lengths(p).tolist()) == [1, 1, 1, 2, 3]  # (2, 1, 1) and (3, 1)
    with pytest.raises(ValueError, match="ReLU-like"):
        activity(nn.Linear(2, 2), torch.randn(3, 2))
