"""experiments/shattered_theory.py (SPEC C2): measured values and the claims' computation."""

from __future__ import annotations

from gradprobe.runs.store import execute, resolve


def test_smoke_values_are_sane(tmp_path):
    s = execute(resolve("shattered_theory", "smoke", 0, {}, tmp_path, "cpu"), quiet=True)
    ff = s["results"]["series"]["feedforward"]
    assert 0.3 < ff["1"]["R"] < 0.7  # 2^−1 within Monte-Carlo noise at smoke scale
