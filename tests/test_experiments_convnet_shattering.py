"""experiments/convnet_shattering.py (SPEC C4): per-sample loss gradients and the statistics the
verdicts judge, against a loop and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gradprobe.experiments.convnet_shattering import loss_gradients
from gradprobe.nets.convnets import shattering_net
from gradprobe.nets.norm import calibrate
from gradprobe.probes.gradient_signal import mean_std_ratio, noise_floor
from gradprobe.probes.shattering import relative_effective_rank


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_per_sample_input_gradients_match_a_loop():
    """One backward of the summed loss with frozen (detached) BN statistics equals each sample's
    own gradient taken with those statistics fixed."""
    g = gen(8)
    x = torch.randn(12, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (12,), generator=g)
    for arch in ("feedforward", "resnet"):
        m = shattering_net(arch, 4, (1, 8, 8), width=4, generator=gen(9))
        fast = loss_gradients(m, x, y)
        calibrate(m, x)  # the same statistics, now stored
        for i in (0, 5, 11):
            xi = x[i:i + 1].clone().requires_grad_(True)
            F.cross_entropy(m(xi), y[i:i + 1]).backward()
            torch.testing.assert_close(fast[i:i + 1], xi.grad, atol=1e-6, rtol=1e-5)


def test_gradient_statistics_against_closed_forms():
    z = torch.randn(256, 400, generator=gen(10))
    floor = noise_floor(256)
    assert floor == math.sqrt(2 / math.pi) / math.sqrt(256)
    assert abs(mean_std_ratio(z) / floor - 1) < 0.05  # pure noise: E|mean|/σ = sqrt(2/π/n)
    assert abs(mean_std_ratio(z + 10.0) - 10) < 0.5  # a shared direction: |mean|/σ = 10
    assert abs(relative_effective_rank(z, generator=gen(11)) - 1) < 0.1
    rank1 = torch.randn(256, 1, generator=gen(12)) * torch.randn(1, 400, generator=gen(13))
    assert relative_effective_rank(rank1, generator=gen(11)) < 0.05


def test_claims_pair_nets_and_judge_on_t_intervals():
    from gradprobe.experiments.convnet_shattering import Config, claims

    cfg = Config(depths=(2, 10), nets=3)

    def row(rank, sig):
        return {"relative_rank_per_net": rank, "mean_std_per_net": sig}

    res = {"noise_floor": 0.05, "nets": {
        "feedforward": {"2": row([0.1, 0.12, 0.11], [0.15, 0.16, 0.14]),
                        "10": row([0.5, 0.6, 0.55], [0.05, 0.05, 0.05])},
        "resnet": {"2": row([0.1, 0.1, 0.1], [0.14, 0.14, 0.14]),
                   "10": row([0.11, 0.12, 0.1], [0.14, 0.15, 0.13])}}}
    got = {c.id: c for c in claims(res, cfg)}
    w = got["feedforward_whitens"]
    assert w.verdict == "holds" and w.n == 3
    ups = [0.5 / 0.1, 0.6 / 0.12, 0.55 / 0.11]
    assert w.measured["rank_FF(10)/rank_FF(2)"] == pytest.approx(ups)
    f = got["feedforward_signal_fades"]
    # per pair: fall_FF − fall_resnet = r(10)/r(2) [resnet] − r(10)/r(2) [FF]
    ref = [0.14 / 0.14 - 0.05 / 0.15, 0.15 / 0.14 - 0.05 / 0.16, 0.13 / 0.14 - 0.05 / 0.14]
    assert f.verdict == "holds" and f.statistic == pytest.approx(sum(ref) / 3)
    res["nets"]["feedforward"]["10"]["relative_rank_per_net"] = [0.2, 0.6, 0.25]
    assert {c.id: c.verdict for c in claims(res, cfg)}["feedforward_whitens"] == "inconclusive"
    na = {c.id: c.verdict for c in claims(res, Config(depths=(2,), nets=3))}
    assert set(na.values()) == {"not_applicable"}
