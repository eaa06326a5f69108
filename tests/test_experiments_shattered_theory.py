"""experiments/shattered_theory.py (SPEC C2): measured values and the claims' computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradprobe.experiments.shattered_theory import Config, claims, predictions
from gradprobe.runs.store import execute, resolve


def test_smoke_values_are_sane(tmp_path):
    s = execute(resolve("shattered_theory", "smoke", 0, {}, tmp_path, "cpu"), quiet=True)
    ff = s["results"]["series"]["feedforward"]
    assert 0.3 < ff["1"]["R"] < 0.7  # 2^−1 within Monte-Carlo noise at smoke scale


def test_thm3_is_judged_at_any_beta_in_the_sweep(tmp_path):
    """--set betas=[0.2]: Thm 3 is judged at β = 0.2 (not failed for lacking β = 0.1); claims
    whose nets are not in the sweep are not_applicable."""
    over = {"betas": [0.2], "archs": ["resnet_bn", "highway"], "highway_norms": ["center"],
            "depths": [1, 2]}
    s = execute(resolve("shattered_theory", "smoke", 0, over, tmp_path, "cpu"), quiet=True)
    c = {x["id"]: x for x in s["claims"]}
    thm3 = c["resnet_bn_sqrt_decay"]
    assert thm3["verdict"] in ("holds", "inconclusive", "fails")
    assert [p["name"] for p in thm3["parts"]] == ["β=0.2, L=1", "β=0.2, L=2"]
    assert c["highway_depth_independent"]["verdict"] == "not_applicable"
    assert "bn in highway_norms" in c["highway_depth_independent"]["expected"]
    assert c["highway_depth_independent_centred"]["verdict"] != "not_applicable"
    for cid in ("feedforward_halves", "feedforward_variance", "resnet_rescaled"):
        assert c[cid]["verdict"] == "not_applicable"
    assert s["free_choices"]["highway_norms"]["value"] == ["center"]


def _entry(R: float, C: float, L: int, K: int = 8, noise: float = 0.01) -> dict:
    """A fake series entry: per-net moments with pooled R and mean C as given."""
    rng = np.random.default_rng(L)
    den = C * (1 + noise * rng.standard_normal(K))
    num = R * den * (1 + noise * rng.standard_normal(K))
    pooled = float(num.sum() / den.sum())
    return {"R": pooled, "R_se": noise * R, "C": float(den.mean()), "num_per_net": num.tolist(),
            "den_per_net": den.tolist(), "C_per_net": den.tolist(),
            **predictions("resnet", L, 1.0, "")}


def test_variance_and_log2_correlation_claims_against_their_predictions():
    good = {str(L): _entry(0.75**L, 2.0**L, L) for L in (1, 2, 4)}
    bad = {str(L): _entry(0.75**L * (2.0 if L == 4 else 1.0), 2.0**L, L) for L in (1, 2, 4)}
    for series, want in ((good, "holds"), (bad, "fails")):
        v = {c.id: c for c in claims({"series": {"resnet": series}}, Config())}
        assert v["resnet_variance"].verdict == "holds"  # C = 2^L exactly
        assert v["resnet_decay_no_bn"].verdict == want  # log2 2 = 1 > 0.5 at L = 4
    c = v["resnet_decay_no_bn"]
    assert c.statistic == pytest.approx(1 + 4 * math.log2(0.75), abs=0.05)
