"""Smoke runs of B1 and C1–C3 (vanishing, shattered_1d, shattered_theory, activations)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from gradprobe.experiments import registry
from gradprobe.runs.store import execute, resolve

EXPECTED_FIGURES = {
    "vanishing": {"speed_per_layer.png", "speed_training.png"},
    "shattered_1d": {"fig1_gradients.png", "fig2_acf.png"},
    "shattered_theory": {"correlation_vs_depth.png"},
    "activations": {"fig3_activation.png", "fig4_rasters.png"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_smoke_run(name, tmp_path):
    assert name in registry.experiments(), registry.BROKEN.get(name)
    req = resolve(name, "smoke", 0, {}, tmp_path, "cpu")
    s = execute(req, quiet=True)
    assert s["status"] == "complete", s
    assert s["claims"] and all(isinstance(c["holds"], bool) for c in s["claims"])
    files = {p.name for p in req.run_dir.iterdir()}
    assert EXPECTED_FIGURES[name] <= files
    on_disk = json.loads((req.run_dir / "summary.json").read_text())
    assert on_disk["results"] == s["results"]


def test_vanishing_claims_at_small_scale(tmp_path):
    """Sigmoid vanishing and He-ReLU balance already show with 2 nets and 200 examples."""
    over = {"hidden_layers": [4], "examples": 200, "nets": 2, "train_epochs": 0}
    s = execute(resolve("vanishing", "quick", 0, over, tmp_path, "cpu"), quiet=True)
    verdicts = {c["id"]: c["holds"] for c in s["claims"]}
    assert verdicts == {"bound_holds": True, "sigmoid_vanishes": True, "he_relu_balanced": True}
    assert torch.isfinite(torch.tensor(s["results"]["nets"]["sigmoid/4"]["speed"])).all()


def test_vanishing_training_resumes_from_checkpoint(tmp_path):
    """A run stopped after epoch 2 (its checkpoint on disk) and restarted must give the same
    history as an uninterrupted run: model, optimiser, batch generator and history restored."""
    from gradprobe.experiments import vanishing as v
    from gradprobe.runs.context import RunContext

    cfg = v.Config(hidden_layers=(2,), examples=40, nets=1, train_epochs=4, train_batch=50)

    def ctx_at(path):
        return RunContext(path, seed=0, device=torch.device("cpu"), quiet=True,
                          checkpoint_every_s=0.0)

    ctx = ctx_at(tmp_path / "full")
    x, y = v.load_data(cfg, ctx)
    full = v.train(cfg, ctx, x, y)
    ctx.close()
    first = ctx_at(tmp_path / "cut")
    v.train(dataclasses.replace(cfg, train_epochs=2), first, x, y)  # "killed" after epoch 2
    first.close()
    again = ctx_at(tmp_path / "cut")
    assert again.load_checkpoint("train")["epoch"] == 2
    resumed = v.train(cfg, again, x, y)
    again.close()
    assert resumed == full
