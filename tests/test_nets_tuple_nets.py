"""N1, N2, TupleNet and ScoreHead of SPEC A4/A5: shapes, shared N1, init, memory layout."""

from __future__ import annotations

import torch
from torch import nn

from gradprobe.nets.tuple_nets import N1, ScoreHead, make_tuple_net
from gradprobe.probes.snr import per_sample_grads
from gradprobe.training.tuple_losses import decomposition_loss, end_to_end_loss
from tests.fixtures import line_tuples


def test_tuple_net_scores_each_image_with_the_shared_n1() -> None:
    net = make_tuple_net(3, torch.Generator().manual_seed(2))
    x, _, _ = line_tuples()
    out, scores = net(x)
    assert out.shape == (6,) and scores.shape == (6, 3)
    for j in range(3):
        torch.testing.assert_close(scores[:, j], net.n1(x[:, j : j + 1]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, net.n2(scores))


def test_init_is_truncated_normal_fan_in_and_seeded() -> None:
    a = make_tuple_net(2, torch.Generator().manual_seed(3))
    b = make_tuple_net(2, torch.Generator().manual_seed(3))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q)
        if name.endswith("bias"):
            assert p.eq(0).all()
        else:
            std = 1.0 / p[0].numel() ** 0.5
            assert p.abs().max() <= 2 * std + 1e-6
    assert isinstance(N1().features[1], nn.Identity)  # no nonlinearity after the convs
    assert isinstance(N1(conv_relu=True).features[1], nn.ReLU)


def test_channels_last_gives_the_same_function() -> None:
    net = make_tuple_net(2, torch.Generator().manual_seed(4))
    x, _, _ = line_tuples(2)
    ref = net(x)[0]
    net = net.to(memory_format=torch.channels_last)
    torch.testing.assert_close(net(x)[0], ref, rtol=1e-4, atol=1e-5)


_LOSSES = {"e2e": lambda out, t: end_to_end_loss(out[0], t[0]),
           "dec": lambda out, t: decomposition_loss(out[0], out[1], t[0], t[1])}
SCORE_LAYER = ("n1.score.weight", "n1.score.bias")
HEAD_PARAMS = ("score.weight", "score.bias")


def test_score_head_gives_the_full_nets_last_layer_gradients() -> None:
    """ScoreHead on precomputed features gives the whole TupleNet's per-sample gradients of
    N1's score layer."""
    k = 3
    net = make_tuple_net(k, torch.Generator().manual_seed(0))
    x, yi, yt = line_tuples(k, 12, seed=1)
    with torch.no_grad():
        h = net.n1.penultimate(x.reshape(-1, 1, 28, 28)).reshape(12, k, -1)
    for m in ("e2e", "dec"):
        full = per_sample_grads(net, _LOSSES[m], x, (yt, yi), SCORE_LAYER)
        head = per_sample_grads(ScoreHead(net), _LOSSES[m], h, (yt, yi), HEAD_PARAMS)
        for a, b in zip(SCORE_LAYER, HEAD_PARAMS):
            torch.testing.assert_close(head[b], full[a], rtol=1e-5, atol=1e-7)
