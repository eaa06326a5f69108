"""Every registered experiment: a smoke run in process, and SIGKILL mid-run then resume.

Adding an experiment is one module plus one entry in EXPERIMENTS below. The resume test makes
the run kill itself right after its first checkpoint or stage write
(GRADPROBE_FAULT_KILL_AFTER_SAVES, runs/context.py), reruns the same command, and checks that the
resumed summary equals the uninterrupted one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradprobe.claims import KINDS, VERDICTS
from gradprobe.experiments import registry
from gradprobe.runs.store import execute, resolve

# name → SPEC id, in SPEC order (the registry must list exactly these, in this order)
EXPERIMENTS = {
    "parity": "A1", "parity_variance": "A2", "linear_periodic": "A3", "end_to_end": "A4",
    "snr": "A5", "noise_decomposition": "A6", "pwl": "A7", "flat_activation": "A8",
    "tuple_variance": "A9", "vanishing": "B1", "shattered_1d": "C1", "shattered_theory": "C2",
    "activations": "C3", "convnet_shattering": "C4", "looks_linear": "C5", "remedies": "E1",
    "signal_propagation": "E2",
}
CLAIM_KEYS = ("id", "statement", "expected", "measured", "paper", "kind", "statistic",
              "threshold", "interval", "interval_method", "n", "verdict", "holds")
_REF: dict[str, dict] = {}


def present() -> list[str]:
    return [n for n in EXPERIMENTS if n in registry.experiments()]


def smoke_summary(name: str, out: Path) -> dict:
    if name not in _REF:
        req = resolve(name, "smoke", 0, {}, out, "cpu")
        s = execute(req, quiet=True)
        s["_files"] = sorted(p.name for p in req.run_dir.iterdir())
        _REF[name] = s
    return _REF[name]


def test_registry_lists_the_table_in_spec_order():
    names = list(registry.experiments())
    assert not registry.BROKEN, registry.BROKEN
    assert set(names) <= set(EXPERIMENTS), set(names) - set(EXPERIMENTS)
    assert names == present()
    assert [registry.get(n).spec for n in names] == [EXPERIMENTS[n] for n in names]


@pytest.mark.parametrize("name", present())
def test_smoke_run_follows_the_verdict_contract(name, tmp_path_factory):
    s = smoke_summary(name, tmp_path_factory.mktemp(name))
    assert s["status"] in ("complete", "diverged"), s.get("error")
    assert s["claims"], "every experiment checks at least one claim"
    for c in s["claims"]:
        assert set(CLAIM_KEYS) <= set(c), (c["id"], set(CLAIM_KEYS) - set(c))
        assert c["kind"] in KINDS and c["verdict"] in VERDICTS
        assert c["holds"] == (c["verdict"] == "holds")
    cfg = registry.get(name).config.smoke()
    for key, fc in type(cfg).FREE_CHOICES.items():
        assert hasattr(cfg, key) and len(fc.values) >= 2 and fc.why, key
    assert s["free_choices"] == cfg.free_choices()
    assert s["figures"] and all(f.endswith(".png") and f in s["_files"] for f in s["figures"])


@pytest.mark.parametrize("name", present())
def test_sigkill_mid_run_then_resume_equals_uninterrupted(name, tmp_path, tmp_path_factory):
    ref = smoke_summary(name, tmp_path_factory.mktemp(name))
    env = {**os.environ, "GRADPROBE_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "GRADPROBE_CHECKPOINT_EVERY": "0"}
    cmd = [sys.executable, "-m", "gradprobe.cli", "run", name, "--scale", "smoke", "--device",
           "cpu", "--out", str(tmp_path)]
    killed = subprocess.run(cmd, env={**env, "GRADPROBE_FAULT_KILL_AFTER_SAVES": "1"},
                            capture_output=True, text=True)
    assert killed.returncode == -9, f"not killed mid-run (no checkpoint/stage?): {killed.stderr}"
    (run_dir,) = (tmp_path / name).iterdir()
    assert not (run_dir / "summary.json").exists()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["resumed"] is True
    assert s["results"] == ref["results"]
    assert [c["verdict"] for c in s["claims"]] == [c["verdict"] for c in ref["claims"]]
