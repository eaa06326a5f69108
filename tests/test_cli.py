"""The command-line contract of DESIGN.md: list, run, show, reproduce, exit codes, overrides."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradprobe import cli
from gradprobe.experiments import registry
from tests import toy_experiment

ENV = {**os.environ, "GRADPROBE_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(registry, "experiments", lambda: {"toy": toy_experiment.EXPERIMENT})


def gp(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradprobe.cli", *args], capture_output=True,
                          text=True, env=ENV, **kw)


def test_list_names_every_spec_experiment():
    r = gp("list")
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert names == list(registry.experiments())
    assert not registry.BROKEN


def test_run_show_and_cached_rerun(toy, tmp_path, capsys):
    assert cli.main(["run", "toy", "--out", str(tmp_path), "--set", "steps=5"]) == 0
    out = capsys.readouterr().out
    assert "override: steps = 5" in out and "positive" in out
    (run_dir,) = (tmp_path / "toy").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["config"]["steps"] == 5
    assert cli.main(["run", "toy", "--out", str(tmp_path), "--set", "steps=5"]) == 0
    assert "(cached)" in capsys.readouterr().out
    assert cli.main(["show", str(run_dir)]) == 0
    assert "positive" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["run", "no_such_experiment"], "unknown experiment 'no_such_experiment'"),
    (["run", "parity", "--set", "nosuchkey=1"], "unknown config key 'nosuchkey'"),
    (["run", "parity", "--set", "lr=fast"], "expected a number"),
    (["run", "parity", "--set", "dims=[0]"], "dims"),
    (["run", "parity", "--scale", "huge"], "invalid choice"),
    (["show", "/nonexistent/run"], "not a directory"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, needle):
    out = tmp_path / "out"
    r = gp(*args, "--out", str(out)) if args[0] == "run" else gp(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_strict_and_failed_exit_codes(toy, tmp_path, capsys):
    assert cli.main(["run", "toy", "--out", str(tmp_path), "--set", "crash=true"]) == 3
    assert cli.main(["run", "toy", "--out", str(tmp_path), "--set", "blow_up=true",
                     "--strict"]) == 1  # diverged is recorded; its NaN fails the claim
    assert cli.main(["run", "toy", "--out", str(tmp_path), "--set", "blow_up=true"]) == 0


def test_reproduce_writes_report(toy, tmp_path, capsys):
    rc = cli.main(["reproduce", "--scale", "smoke", "--out", str(tmp_path), "--workers", "1"])
    assert rc == 0
    md = (tmp_path / "report.md").read_text()
    assert "| toy | `positive` |" in md and "![toy: toy.png]" in md
    html = (tmp_path / "report.html").read_text()
    assert "<img src='toy/" in html


def test_kill_9_then_resume_gives_same_results(tmp_path):
    """A run killed with SIGKILL mid-training resumes from its checkpoint and ends with the
    same results as an uninterrupted run (checkpoints every 0.2 s here)."""
    args = ["run", "parity", "--scale", "smoke", "--set", "iterations=3000", "--set",
            "dims=[6]", "--device", "cpu"]
    ref = gp(*args, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    env = {**ENV, "GRADPROBE_CHECKPOINT_EVERY": "0.2"}
    out = tmp_path / "cut"
    p = subprocess.Popen([sys.executable, "-m", "gradprobe.cli", *args, "--out", str(out)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("parity/*/checkpoints/*.pt")):
        time.sleep(0.05)
    time.sleep(0.3)
    killed = p.poll() is None
    if killed:
        p.send_signal(signal.SIGKILL)
    p.wait()
    assert killed, "the run finished before it could be killed; make it longer"
    (run_dir,) = (out / "parity").iterdir()
    assert not (run_dir / "summary.json").exists()
    again = subprocess.run([sys.executable, "-m", "gradprobe.cli", *args, "--out", str(out)],
                           env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    s_ref = json.loads(next(Path(tmp_path / "ref").glob("parity/*/summary.json")).read_text())
    s_cut = json.loads((run_dir / "summary.json").read_text())
    assert s_cut["resumed"] is True
    assert s_cut["results"] == s_ref["results"]
    assert [c["measured"] for c in s_cut["claims"]] == [c["measured"] for c in s_ref["claims"]]
