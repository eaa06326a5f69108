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
