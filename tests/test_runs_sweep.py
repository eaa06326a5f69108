"""runs/sweep.py: KEY=V1,V2 parsing, one run per value, the sweep file of SPEC D1."""

from __future__ import annotations

import json

import pytest

from gradprobe.errors import UsageError
from gradprobe.runs.sweep import parse_values, sweep


def test_parse_values_keeps_lists_whole_and_refuses_bad_input():
    assert parse_values("betas=[0.1,1],[0.5]") == ("betas", [[0.1, 1], [0.5]])
    assert parse_values("tau=0.005,0.02") == ("tau", [0.005, 0.02])
    assert parse_values("data=digits,gaussian") == ("data", ["digits", "gaussian"])
    for bad in ("tau", "tau=0.1,,0.2", "tau=0.1,0.1", "x=" + "[" * 5000):
        with pytest.raises(UsageError):
            parse_values(bad)


def test_sweep_writes_one_verdict_per_value(tmp_path, monkeypatch):
    from gradprobe.experiments import registry
    from tests import toy_experiment

    monkeypatch.setattr(registry, "experiments", lambda: {"toy": toy_experiment.EXPERIMENT})
    doc = sweep("toy", "steps=2,3", scale="smoke", out=tmp_path, device="cpu", workers=1)
    saved = json.loads((tmp_path / "toy" / "sweeps" / "steps.json").read_text())
    assert saved["values"] == [2, 3] and saved["key"] == "steps"
    assert set(saved) >= {"experiment", "key", "values", "verdicts", "runs"}
    assert all(len(v) == 2 for v in saved["verdicts"].values())
    assert doc["runs"][0] != doc["runs"][1]
