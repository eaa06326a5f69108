"""A2 `parity_variance`: the verdicts at smoke scale, and Theorem 1 away from init."""

from __future__ import annotations

import pytest

from gradprobe.runs.store import execute, resolve


def test_bound_is_exact_and_holds_at_smoke_scale(tmp_path) -> None:
    s = execute(resolve("parity_variance", "smoke", out=tmp_path), quiet=True)
    assert s["status"] == "complete", s.get("error")
    c = {c["id"]: c for c in s["claims"]}
    assert c["bound_holds"]["kind"] == "bound" and c["bound_holds"]["interval"] is None
    assert c["bound_holds"]["verdict"] == "holds"  # Theorem 1 holds at every d and every w
    assert c["exponential_decay"]["kind"] == "empirical"
    assert c["exponential_decay"]["n"] == 3 and c["exponential_decay"]["interval"] is not None
    for row in (r for v in s["results"]["per_d"].values() for r in v["per_seed"]):
        assert row["var"] == pytest.approx(row["closed_form"], rel=1e-9)


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
