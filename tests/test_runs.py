"""The run store: directories keyed by config, caching, resume, diverged and failed runs."""

from __future__ import annotations

import json

import pytest

from gradprobe.experiments import registry
from gradprobe.runs.atomic import clean_json, has_nonfinite
from gradprobe.runs.store import execute, resolve
from tests import toy_experiment


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(registry, "experiments", lambda: {"toy": toy_experiment.EXPERIMENT})
    return toy_experiment.EXPERIMENT


def test_run_dir_layout_and_cache(toy, tmp_path):
    req = resolve("toy", "quick", 0, {}, tmp_path, "cpu")
    s = execute(req, quiet=True)
    d = req.run_dir
    assert d == tmp_path / "toy" / req.run_id
    assert {p.name for p in d.iterdir()} >= {"config.json", "metrics.jsonl", "summary.json",
                                            "toy.png"}
    assert not (d / "checkpoints").exists() and not (d / "stages").exists()
    assert s["status"] == "complete" and s["claims"][0]["holds"] is True
    again = execute(resolve("toy", "quick", 0, {}, tmp_path, "cpu"), quiet=True)
    assert again.get("cached") and again["results"] == s["results"]
    other = resolve("toy", "quick", 1, {}, tmp_path, "cpu")
    assert other.run_id != req.run_id
    assert resolve("toy", "quick", 0, {"steps": 21}, tmp_path, "cpu").run_id != req.run_id


def test_resume_after_interruption_gives_same_results(toy, tmp_path):
    """Simulate a kill: stage d=2 finished, d=3 checkpointed at step 7 with extra metrics
    written after the checkpoint. The resumed run must equal an uninterrupted one, and
    metrics.jsonl must hold every point exactly once."""
    ref = execute(resolve("toy", "quick", 0, {}, tmp_path / "ref", "cpu"), quiet=True)
    ref_metrics = (next((tmp_path / "ref" / "toy").iterdir()) / "metrics.jsonl").read_text()

    req = interrupted_toy_run(tmp_path / "cut", toy)
    s = execute(req, quiet=True)
    assert s["resumed"] is True
    assert s["results"] == ref["results"]
    assert (req.run_dir / "metrics.jsonl").read_text() == ref_metrics


class Stop(Exception):
    pass


def interrupted_toy_run(out, toy):
    """A toy run stopped as a kill would stop it: stage d=2 finished, d=3 checkpointed at step
    7, and one metrics point logged after that checkpoint. Returns its RunRequest."""
    from gradprobe.runs.context import RunContext

    req = resolve("toy", "quick", 0, {}, out, "cpu")
    ctx = RunContext(req.run_dir, 0, req.device, quiet=True)
    real = ctx.save_checkpoint

    def save(state, name="state"):
        real(state, name)
        if name == "d3" and state["step"] == 7:
            ctx.log("w", 99, d=3, norm=-1.0)  # a point logged after the last checkpoint
            raise Stop

    ctx.save_checkpoint = save
    with pytest.raises(Stop):
        toy.run(req.config, ctx)
    ctx.close()
    return req


def test_diverged_and_failed_are_recorded_not_raised(toy, tmp_path):
    s = execute(resolve("toy", "quick", 0, {"blow_up": True}, tmp_path, "cpu"), quiet=True)
    # the NaN comes out of a ctx.stage: staging must not launder it into a "complete" run
    assert s["status"] == "diverged" and s["results"]["norms"]["3"] is None
    json.loads((tmp_path / "toy" / s["run_id"] / "summary.json").read_text())  # strict JSON
    f = execute(resolve("toy", "quick", 0, {"crash": True}, tmp_path, "cpu"), quiet=True)
    assert f["status"] == "failed" and "boom" in f["error"]
    assert "RuntimeError" in (tmp_path / "toy" / f["run_id"] / "run.log").read_text()


def test_clean_json_and_nonfinite():
    import math

    import numpy as np
    import torch

    assert clean_json({"a": (1, math.inf), "b": np.float32(0.5), "c": torch.tensor([1.0])}) == \
        {"a": [1, None], "b": 0.5, "c": [1.0]}
    assert has_nonfinite({"x": [1.0, math.nan]}) and not has_nonfinite({"x": [1.0, 2]})
