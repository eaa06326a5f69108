"""The end-to-end and decomposition losses of SPEC A4."""

from __future__ import annotations

import torch

from gradprobe.nets.tuple_nets import make_tuple_net
from gradprobe.training.tuple_losses import decomposition_loss, end_to_end_loss
from tests.fixtures import line_tuples


def test_decomposition_loss_reduces_to_end_to_end_without_its_extra_term() -> None:
    net = make_tuple_net(3, torch.Generator().manual_seed(1))
    x, yi, yt = line_tuples()
    out, scores = net(x)
    e2e = end_to_end_loss(out, yt)
    dec0 = decomposition_loss(out, scores, yt, yi, weight=0.0)
    assert torch.equal(e2e, dec0)
    g_e2e = torch.autograd.grad(e2e, list(net.parameters()), retain_graph=True)
    g_dec0 = torch.autograd.grad(dec0, list(net.parameters()), retain_graph=True)
    for a, b in zip(g_e2e, g_dec0):
        assert torch.equal(a, b)
    # with weight 1 the extra term is the mean per-image hinge on N1's scores
    dec1 = decomposition_loss(out, scores, yt, yi)
    manual = torch.clamp(1 - out * yt, min=0).mean() + torch.clamp(1 - scores * yi, min=0).mean()
    torch.testing.assert_close(dec1, manual)
