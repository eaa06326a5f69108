"""A1 `parity`'s training step: hinge-loss ensemble gradients against finite differences."""

from __future__ import annotations

import pytest
import torch

from gradprobe.nets.parity import parity_net
from gradprobe.tasks.parity import parity_labels, sample_inputs
from gradprobe.training.ensemble import Ensemble
from gradprobe.training.metrics import hinge
from gradprobe.training.metrics import sign_accuracy as accuracy


def test_hinge_gradients_match_finite_differences() -> None:
    """Ensemble gradients of the hinge loss against central differences (float64)."""
    d, n = 4, 64
    g = torch.Generator().manual_seed(3)
    ens = Ensemble.build(lambda gg: parity_net(d, gg).double(),
                         [torch.Generator().manual_seed(s) for s in range(2)])
    x = sample_inputs((2, n), d, g).double()
    y = parity_labels(x, torch.tensor([1.0, 0, 1, 1], dtype=torch.float64))
    for k in ("0.bias", "2.bias"):  # zero biases put x = 0 on every ReLU kink: move off them
        ens.params[k].normal_(0.0, 0.3, generator=g)
    _, grads = ens.loss_and_grads(hinge, x, y, stacked=True)
    assert bool((hinge(ens(x), y) > 0).all())
    eps = 1e-6
    for k, p in ens.params.items():
        flat = p.view(-1)
        for idx in torch.randperm(flat.numel(), generator=g)[:6].tolist():
            old = float(flat[idx])
            flat[idx] = old + eps
            up = hinge(ens(x), y)
            flat[idx] = old - eps
            down = hinge(ens(x), y)
            flat[idx] = old
            fd = ((up - down) / (2 * eps)).sum()  # only the owning seed's loss moves
            torch.testing.assert_close(grads[k].reshape(-1)[idx], fd, rtol=1e-5, atol=1e-7)


def test_accuracy_and_hinge_values() -> None:
    pred = torch.tensor([[2.0], [-0.5], [0.5], [-3.0]])
    y = torch.tensor([1.0, 1.0, -1.0, -1.0])
    assert float(accuracy(pred, y)) == 0.5
    assert float(hinge(pred, y)) == pytest.approx((0 + 1.5 + 1.5 + 0) / 4)
