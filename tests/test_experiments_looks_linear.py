"""experiments/looks_linear.py (SPEC C5): claims computed from the measurements of a smoke run."""

from __future__ import annotations

import copy

import pytest

from gradprobe.experiments import looks_linear as ll
from gradprobe.runs.store import execute, resolve


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Each experiment's smoke run, once per module: name → (summary, out dir)."""
    cache: dict[str, tuple[dict, object]] = {}

    def get(name: str):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = (execute(resolve(name, "smoke", out=out, device="cpu"), quiet=True), out)
        return cache[name]

    return get


def test_smoke_claims_are_computed_from_measurements(smoke):
    s, _ = smoke("looks_linear")
    assert s["results"]["params"]["crelu_ll"]["10"] > 0
    claims = {c["id"]: c for c in s["claims"]}
    lin = claims["ll_is_linear_at_init"]
    assert lin["holds"] and lin["measured"]["crelu_ll/10"] <= 1e-5
    assert lin["measured"]["relu/10 (He, contrast)"] > 0.1
    # no ResNet in the smoke zoo: its accuracy is NaN, and a NaN never makes a claim hold
    assert claims["ll_matches_resnet_deep"]["holds"] is False
    res = copy.deepcopy(s["results"])
    res["accuracy_mean"]["relu"]["10"] = res["accuracy_mean"]["crelu_ll"]["10"] - 0.2
    cfg = ll.Config.smoke()
    assert {c.id: c.holds for c in ll.claims(res, cfg)}["plain_relu_degrades"] is True
    res["accuracy_mean"]["relu"]["10"] = float("nan")
    assert {c.id: c.holds for c in ll.claims(res, cfg)}["plain_relu_degrades"] is False
