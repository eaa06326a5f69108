"""experiments/shattered_1d.py (SPEC C1): overrides, determinism and the claims' computation."""

from __future__ import annotations

from gradprobe.runs.store import execute, resolve


def test_overrides_and_determinism(tmp_path):
    over = {"depths": [1, 3], "archs": ["feedforward"], "nets": 2, "width": 16, "grid": 32,
            "max_lag": 8, "noise_draws": 2}
    a = execute(resolve("shattered_1d", "smoke", 3, over, tmp_path / "a", "cpu"), quiet=True)
    b = execute(resolve("shattered_1d", "smoke", 3, over, tmp_path / "b", "cpu"), quiet=True)
    assert a["results"] == b["results"]
    assert set(a["results"]["nets"]) == {"feedforward/1", "feedforward/3"}


def _res(lag1: dict[str, list[float]]) -> dict:
    return {"nets": {k: {"lag1": v, "lag1_mean": sum(v) / len(v)} for k, v in lag1.items()}}


def test_claims_on_intervals_and_not_applicable():
    from gradprobe.experiments.shattered_1d import Config, claims

    cfg = Config()
    res = _res({"feedforward/1": [0.97, 0.96, 0.98], "feedforward/24": [0.5, 0.45, 0.55],
                "resnet_beta0.1/50": [0.88, 0.9, 0.86], "resnet_beta1/50": [0.3, 0.7, 0.5]})
    v = {c.id: c for c in claims(res, cfg)}
    assert v["shallow_is_brown"].verdict == "holds"
    assert v["shallow_is_brown"].interval[0] > 0.9 and v["shallow_is_brown"].n == 3
    assert v["deep_feedforward_is_white"].verdict == "fails"  # whole interval above 0.2
    assert v["resnets_keep_structure"].verdict == "inconclusive"  # β = 1 straddles 0.4
    # a sweep without depth 24 / 50, or fewer than 3 nets: not_applicable, never fails
    v = {c.id: c.verdict for c in claims(_res({"feedforward/1": [0.97, 0.96]}), cfg)}
    assert set(v.values()) == {"not_applicable"}


def test_smoke_claims_are_not_applicable_without_their_depths(tmp_path):
    s = execute(resolve("shattered_1d", "smoke", 0, {}, tmp_path, "cpu"), quiet=True)
    v = {c["id"]: c["verdict"] for c in s["claims"]}
    assert v["deep_feedforward_is_white"] == v["resnets_keep_structure"] == "not_applicable"
    assert v["shallow_is_brown"] != "not_applicable"  # depth 1 is measured at smoke scale
    assert set(s["free_choices"]) == {"first_layer", "resnet_embed"}
