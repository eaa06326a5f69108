"""experiments/activations.py (SPEC C3): the claims' computation on intervals over nets."""

from __future__ import annotations

import numpy as np

from gradprobe.claims import t_interval
from gradprobe.experiments.activations import Config, claims, worst_deviation


def _variant(act: np.ndarray, coact: np.ndarray, first: int, bimodal: list[float]) -> dict:
    return {"activation_per_net": act.tolist(), "coactivation_per_net": coact.tolist(),
            "layer_ids": list(range(first, first + act.shape[1])), "bimodal_per_net": bimodal,
            "coactivation": coact.mean(0).tolist()}


def test_claims_from_per_net_values():
    rng = np.random.default_rng(0)
    n, L = 10, 50
    half = 0.5 + 0.01 * rng.standard_normal((n, L))
    quarter = 0.25 + 0.01 * rng.standard_normal((n, L))
    ff = _variant(half, np.full((n, L), 0.47) + 0.01 * rng.standard_normal((n, L)), 1,
                  [0.9, 0.88, 0.93, 0.91, 0.9, 0.87, 0.92, 0.9, 0.89, 0.9])
    bad = half.copy()
    bad[:, 30] = 0.62  # one layer far from ½: the worst layer decides
    res = {"depth": 50, "variants": {
        "ff_bn": _variant(half, quarter, 1, [0.0] * n), "ff": ff,
        "resnet_bn_beta1": _variant(half[:, 1:], quarter[:, 1:], 2, [0.0] * n),
        "resnet_bn_beta0.1": _variant(bad[:, 1:], quarter[:, 1:], 2, [0.0] * n)}}
    v = {c.id: c for c in claims(res, Config())}
    assert v["bn_half_active"].verdict == "fails"
    assert v["bn_half_active"].statistic == np.float64(abs(bad[:, 30].mean() - 0.5))
    assert v["bn_quarter_coactive"].verdict == "holds"
    assert v["no_bn_coactivation_climbs"].verdict == "holds"
    assert v["no_bn_bimodal"].verdict == "holds" and v["no_bn_bimodal"].n == n
    # layer 1 of the FF nets (scalar input, not normalised) is left out of the BN claims
    res["variants"]["resnet_bn_beta0.1"] = res["variants"]["resnet_bn_beta1"]
    res["variants"]["ff_bn"]["activation_per_net"] = np.column_stack(
        [np.full(n, 0.35), half[:, 1:]]).tolist()
    assert {c.id: c.verdict for c in claims(res, Config())}["bn_half_active"] == "holds"
    # shallower than 50 layers: the no-BN claims are not_applicable
    res["depth"] = 10
    v = {c.id: c.verdict for c in claims(res, Config())}
    assert v["no_bn_coactivation_climbs"] == v["no_bn_bimodal"] == "not_applicable"


def test_worst_deviation_against_per_layer_intervals():
    """Inside the tolerance iff every layer's t interval is; outside iff some layer's is."""
    rng = np.random.default_rng(1)
    x = 0.5 + 0.02 * rng.standard_normal((8, 5))
    x[:, 3] += 0.1  # one layer off by 0.1 ± its noise
    e = worst_deviation(x, 0.5)
    per = [t_interval(x[:, i]) for i in range(5)]
    assert e.hi == max(max(abs(p.lo - 0.5), abs(p.hi - 0.5)) for p in per)
    assert e.lo == per[3].lo - 0.5 > 0.05  # layer 3's interval excludes 0.05: the claim fails
    assert e.lo <= e.value <= e.hi and e.n == 8
    centred = 0.5 + 0.01 * rng.standard_normal((8, 5))
    assert worst_deviation(centred, 0.5).lo == 0.0  # every interval contains the target
