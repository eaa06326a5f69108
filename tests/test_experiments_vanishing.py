"""experiments/vanishing.py (SPEC B1): verdicts from measured speeds, and the bound on its nets."""

from __future__ import annotations

import copy

import pytest
import torch

from gradprobe.experiments import vanishing as v
from gradprobe.runs.store import execute, resolve


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Sigmoid vanishing and He-ReLU balance already show with 3 nets and 200 examples."""
    over = {"hidden_layers": [4], "examples": 200, "nets": 3, "train_epochs": 0}
    return execute(resolve("vanishing", "quick", 0, over, tmp_path_factory.mktemp("v"), "cpu"),
                   quiet=True)


def test_claims_hold_on_intervals_over_the_nets(small):
    claims = {c["id"]: c for c in small["claims"]}
    assert {k: c["verdict"] for k, c in claims.items()} == {
        "bound_holds": "holds", "sigmoid_vanishes": "holds", "he_relu_balanced": "holds"}
    assert claims["bound_holds"]["kind"] == "bound" and claims["bound_holds"]["interval"] is None
    sig = claims["sigmoid_vanishes"]
    assert sig["kind"] == "empirical" and sig["n"] == 3 and sig["interval"][1] <= 0.1
    assert torch.isfinite(torch.tensor(small["results"]["nets"]["sigmoid/4"]["speed"])).all()


def test_per_net_ratio_is_first_over_last_speed(small):
    """The replicate the verdicts use: speed(first)/speed(last) of each net, as measured."""
    r = small["results"]["nets"]["relu/4"]
    for per_net, ratio in zip(r["speed_per_net"], r["first_over_last_per_net"]):
        assert ratio == pytest.approx(per_net[0] / per_net[3], rel=1e-12)


def test_verdicts_follow_the_numbers(small):
    cfg = v.Config(hidden_layers=(4,), nets=3)
    res = copy.deepcopy(small["results"])
    res["nets"]["tanh/4"]["max_ratio_per_net"][1] = 1.01  # a violated bound
    res["nets"]["sigmoid/4"]["first_over_last_per_net"] = [0.02, 0.3, 0.05]  # straddles 0.1
    got = {c.id: c.verdict for c in v.claims(res, cfg)}
    assert got["bound_holds"] == "fails" and got["sigmoid_vanishes"] == "inconclusive"
    del res["nets"]["sigmoid/4"]
    assert {c.id: c.verdict for c in v.claims(res, cfg)}["sigmoid_vanishes"] == "not_applicable"
