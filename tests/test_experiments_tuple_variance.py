"""A9 `tuple_variance`: the claim's parts on synthetic per-net ratios (SPEC D3)."""

from __future__ import annotations

import math

import pytest

from gradprobe.experiments.tuple_variance import Config, claims, envelope


def _res(per_k_ratios: dict[int, list[float]], d: int = 64) -> dict:
    per_k = {str(k): {"per_net": [{"ratio": r} for r in rs], "ratio": sum(rs) / len(rs)}
             for k, rs in per_k_ratios.items()}
    return {"per_d": {str(d): per_k}, "nets": 3}


def test_envelope_and_fit_at_k1() -> None:
    assert envelope(2, 64) == pytest.approx(2 * math.log(64) / 64)
    res = _res({1: [1e-2, 1.1e-2, 0.9e-2], 2: [1e-5, 2e-5, 1.5e-5], 3: [1e-7, -1e-7, 0.0]})
    (c,) = claims(res, Config())
    assert c.verdict == "holds"
    names = [p["name"] for p in c.parts]
    # k = 3 is compared with k = 2 (resolved above 0); the envelope constant is fitted at k = 1
    assert "d=64 ratio(k=3) − ratio(k=2)" in names
    env3 = next(p for p in c.parts if p["name"] == "d=64 ratio(k=3) vs envelope")
    assert env3["threshold"] == pytest.approx(1e-2 / envelope(1, 64) * envelope(3, 64))


def test_unresolved_values_are_compared_with_the_last_resolved_k() -> None:
    res = _res({1: [1e-2, 1.1e-2, 0.9e-2], 2: [1e-7, -1e-7, 0.0], 3: [2e-7, -2e-7, 0.0]})
    (c,) = claims(res, Config())
    assert "d=64 ratio(k=3) − ratio(k=1)" in [p["name"] for p in c.parts]
    assert c.verdict == "holds"


def test_a_rise_above_the_envelope_fails() -> None:
    res = _res({1: [1e-3, 1.1e-3, 0.9e-3], 2: [5e-3, 5.1e-3, 4.9e-3]})
    (c,) = claims(res, Config())
    assert c.verdict == "fails"


def test_without_k1_the_claim_is_not_applicable() -> None:
    (c,) = claims(_res({2: [1e-5, 2e-5, 3e-5], 3: [0.0, 0.0, 1e-9]}), Config())
    assert c.verdict == "not_applicable"
