"""`reproduce` on its two real backends: worker processes and Ray, with real smoke experiments."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "GRADPROBE_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
       "RAY_AUTH_MODE": "disabled"}
ONLY = "vanishing,activations"


def _reproduce(tmp_path, *extra: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "gradprobe.cli", "reproduce", "--scale", "smoke",
                        "--only", ONLY, "--out", str(tmp_path), "--workers", "2", *extra],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "report:" in r.stdout
    md = (tmp_path / "report.md").read_text()
    summaries = {}
    for name in ONLY.split(","):
        (path,) = (tmp_path / name).glob("*/summary.json")
        summaries[name] = json.loads(path.read_text())
        assert summaries[name]["status"] == "complete"
        assert f"## {name}" in md
    return summaries


def test_process_pool_matches_in_process(tmp_path):
    """Worker processes give exactly the results of a run in this process."""
    from gradprobe.runs.store import execute, resolve

    pooled = _reproduce(tmp_path / "pool")
    direct = execute(resolve("activations", "smoke", 0, {}, tmp_path / "direct", "cpu"),
                     quiet=True)
    assert pooled["activations"]["results"] == direct["results"]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed")
def test_ray_backend(tmp_path):
    pooled = _reproduce(tmp_path / "ray", "--backend", "ray")
    assert all(c["holds"] in (True, False) for s in pooled.values() for c in s["claims"])
