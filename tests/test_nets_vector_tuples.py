"""nets.vector_tuples: the closed-form per-sample gradients against torch.func."""

from __future__ import annotations

import torch

from gradprobe.nets.vector_tuples import VectorTupleNet
from gradprobe.probes.target_variance import per_sample_jacobians
from gradprobe.tasks.gaussian_tuples import sample_tuples


def test_vector_tuple_net_gradients_match_torch_func() -> None:
    g = torch.Generator().manual_seed(3)
    net = VectorTupleNet(5, 3, g, hidden=9).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, dtype=p.dtype, generator=g))
    x = sample_tuples(7, 3, 5, g).double()
    p, jac = per_sample_jacobians(net, x)
    torch.testing.assert_close(net.per_sample_grads(x), jac)
    torch.testing.assert_close(net(x), p)
