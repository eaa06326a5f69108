"""A3 `linear_periodic`: the training companion's radii and its claim (SPEC D2)."""

from __future__ import annotations

import pytest

from gradprobe.experiments.linear_periodic import companion_radii
from gradprobe.runs.store import execute, resolve


def test_companion_radii_pick_the_first_resolved_and_the_first_floor_point() -> None:
    sweep = {"0.5": 40.0, "1": 150.0, "3": 3.0, "4": 1.5, "6": 1.0}
    by_r = {k: {"above_floor": v} for k, v in sweep.items()}
    assert companion_radii(by_r) == (0.5, 4.0)
    assert companion_radii({k: {"above_floor": 5.0} for k in sweep}) is None  # nothing ≥ 10×
    assert companion_radii({"1": {"above_floor": 50.0}, "2": {"above_floor": 9.0}}) is None


def test_training_companion_claim(tmp_path) -> None:
    """A small r (Var ≫ floor) is learned below the trivial loss, a large one is not; the
    claim is judged on the paired per-seed difference (Student t over 3 seeds)."""
    overrides = {"radii": [1.0, 6.0], "samples_r": 20000, "targets": 16, "dims": [2, 20],
                 "train_steps": 600, "train_seeds": 3, "train_test_size": 2048}
    s = execute(resolve("linear_periodic", "smoke", overrides=overrides, out=tmp_path),
                quiet=True)
    assert s["status"] == "complete", s.get("error")
    tr = s["results"]["training"]
    assert tr["radii"] == [1.0, 6.0]
    c = {c["id"]: c for c in s["claims"]}["training_follows_variance"]
    assert c["kind"] == "empirical" and c["n"] == 3 and c["interval"] is not None
    red = tr["reduction_vs_trivial"]
    diffs = [red[2 * i] - red[2 * i + 1] for i in range(3)]
    assert c["statistic"] == pytest.approx(sum(diffs) / 3)
    for m, mse in enumerate(tr["test_mse"][-1]):  # (Var(y) − MSE)/Var(y) per member
        assert red[m] == pytest.approx(1 - mse / tr["trivial_mse"][m])
    assert min(red[0::2]) > 0.2 and max(red[1::2]) < 0.05
