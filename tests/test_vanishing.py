"""Smoke runs of C1–C3 (shattered_1d, shattered_theory, activations); B1 `vanishing` is tested in
test_experiments_vanishing.py."""

from __future__ import annotations

import json

import pytest

from gradprobe.experiments import registry
from gradprobe.runs.store import execute, resolve

EXPECTED_FIGURES = {
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
