"""A5: the streamed estimate against a per-tuple autograd loop on the same tuples."""

from __future__ import annotations

import pytest
import torch

from gradprobe.experiments.snr import Config, estimate, pool_features
from gradprobe.nets.tuple_nets import ScoreHead, make_tuple_net
from gradprobe.probes.snr import snr_from_samples
from gradprobe.training.tuple_losses import decomposition_loss, end_to_end_loss


@pytest.mark.parametrize("k", [1, 3])
def test_estimate_equals_a_per_sample_loop(k: int) -> None:
    net = make_tuple_net(k, torch.Generator().manual_seed(0))
    h, y = pool_features(net, 60, torch.Generator().manual_seed(1), chunk=25)
    cfg = Config(chunk_size=16)
    n = 50
    got = estimate(net, h, y, k, n, cfg, torch.Generator().manual_seed(2))
    # the same tuples: the estimator draws chunk_size index rows at a time from its generator
    g = torch.Generator().manual_seed(2)
    idx = torch.cat([torch.randint(0, 60, (min(16, n - a), k), generator=g)
                     for a in range(0, n, 16)])
    head = ScoreHead(net)
    losses = {"e2e": lambda out, s, yt, yi: end_to_end_loss(out, yt),
              "dec": lambda out, s, yt, yi: decomposition_loss(out, s, yt, yi)}
    for m, loss_fn in losses.items():
        rows = []
        for i in range(n):
            head.zero_grad()
            hi, yi = h[idx[i]][None], y[idx[i]][None]
            out, s = head(hi)
            loss_fn(out, s, yi.prod(1), yi).backward()
            rows.append(torch.cat([head.score.weight.grad[0], head.score.bias.grad]))
        ref = snr_from_samples(torch.stack(rows))
        assert got[m]["signal"] == pytest.approx(ref.signal, rel=1e-4, abs=1e-12)
        assert got[m]["noise"] == pytest.approx(ref.noise, rel=1e-5)
        assert got[m]["signal_se"] == pytest.approx(ref.signal_se, rel=1e-3)
