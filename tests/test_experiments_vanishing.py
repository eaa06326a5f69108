"""experiments/vanishing.py (SPEC B1): verdicts from measured speeds, and the bound on its nets."""

from __future__ import annotations

import torch

from gradprobe.runs.store import execute, resolve


def test_vanishing_claims_at_small_scale(tmp_path):
    """Sigmoid vanishing and He-ReLU balance already show with 2 nets and 200 examples."""
    over = {"hidden_layers": [4], "examples": 200, "nets": 2, "train_epochs": 0}
    s = execute(resolve("vanishing", "quick", 0, over, tmp_path, "cpu"), quiet=True)
    verdicts = {c["id"]: c["holds"] for c in s["claims"]}
    assert verdicts == {"bound_holds": True, "sigmoid_vanishes": True, "he_relu_balanced": True}
    assert torch.isfinite(torch.tensor(s["results"]["nets"]["sigmoid/4"]["speed"])).all()
