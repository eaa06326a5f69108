"""experiments/looks_linear.py (SPEC C5): claims computed from the measurements of a smoke run
and from synthetic per-seed accuracies."""

from __future__ import annotations

import copy

import pytest

from gradprobe.experiments import looks_linear as ll
from gradprobe.runs.store import execute, resolve


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return execute(resolve("looks_linear", "smoke", out=tmp_path_factory.mktemp("ll"),
                           device="cpu"), quiet=True)


def test_smoke_claims_are_computed_from_measurements(smoke):
    s = smoke
    assert s["results"]["params"]["crelu_ll"]["10"] > 0
    claims = {c["id"]: c for c in s["claims"]}
    lin = claims["ll_is_linear_at_init"]
    assert lin["kind"] == "identity" and lin["verdict"] == "holds" and lin["interval"] is None
    assert lin["measured"]["crelu_ll/10"] <= 1e-5
    assert lin["measured"]["relu/10 (He, contrast)"] > 0.1
    # no ResNet in the smoke zoo: the claim that needs it is not applicable, not failed
    assert claims["ll_matches_resnet_deep"]["verdict"] == "not_applicable"
    assert "resnet" in claims["ll_matches_resnet_deep"]["expected"]
    # one seed: the t interval is unbounded, so the verdict cannot be decided
    assert claims["plain_relu_degrades"]["verdict"] == "inconclusive"


def test_accuracy_verdicts_on_per_seed_differences(smoke):
    cfg = ll.Config(depths=(10,), models=("crelu_ll", "resnet", "relu"))
    res = copy.deepcopy(smoke["results"])
    res["accuracy"] = {"crelu_ll": {"10": [0.95, 0.96, 0.94]},
                       "resnet": {"10": [0.90, 0.93, 0.92]},
                       "relu": {"10": [0.2, 0.9, 0.15]}}
    got = {c.id: c for c in ll.claims(res, cfg)}
    rn = got["ll_matches_resnet_deep"]
    assert rn.verdict == "holds" and rn.n == 3
    assert rn.statistic == pytest.approx((0.05 + 0.03 + 0.02) / 3)
    assert got["plain_relu_degrades"].verdict == "inconclusive"  # one seed caught up
    res["accuracy"]["relu"]["10"] = [0.2, 0.25, 0.15]
    assert {c.id: c.verdict for c in ll.claims(res, cfg)}["plain_relu_degrades"] == "holds"
    res["accuracy"]["resnet"]["10"] = [0.99, 0.995, 0.99]
    res["accuracy"]["crelu_ll"]["10"] = [0.80, 0.82, 0.81]
    assert {c.id: c.verdict for c in ll.claims(res, cfg)}["ll_matches_resnet_deep"] == "fails"
