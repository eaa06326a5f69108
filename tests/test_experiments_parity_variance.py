"""A2 `parity_variance`: Theorem 1 away from init, through the experiment."""

from __future__ import annotations

import pytest

from gradprobe.runs.store import execute, resolve


def test_bound_holds_away_from_init(tmp_path) -> None:
    """Theorem 1 holds at every w: after SGD steps (|p| > 1 on some inputs) it is not tight."""
    s = execute(resolve("parity_variance", "smoke", overrides={"dims": [4, 5], "train_steps": 300},
                        out=tmp_path), quiet=True)
    assert s["status"] == "complete"
    rows = [r for v in s["results"]["per_d"].values() for r in v["per_seed"]]
    assert all(r["ratio"] <= 1 for r in rows)
    assert any(r["max_abs_pred"] > 1 for r in rows)
    for r in rows:
        assert r["var"] == pytest.approx(r["closed_form"], rel=1e-9)
