"""Adversarial checks of the run store, the CLI's input handling and the backends (issue 14).

Fast by default: the toy experiment in this process. Real experiments in subprocesses, Ray and
submitit are marked slow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from gradprobe import cli
from gradprobe.config import ExperimentConfig, apply_overrides, parse_overrides
from gradprobe.errors import ConfigError, UsageError
from gradprobe.experiments import registry
from gradprobe.runs.store import execute, resolve, run_lock, write_summary
from tests import toy_experiment
from tests.test_runs import interrupted_toy_run

ENV = {**os.environ, "GRADPROBE_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
       "RAY_AUTH_MODE": "disabled"}
CORRUPTIONS = {
    "truncate": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "nul": lambda b: b"\0" * max(len(b), 1),
    "list": lambda b: b"[]",
    "bitflip": lambda b: b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 0x10]) + b[len(b) // 2 + 1:],
}


def _use(monkeypatch, exp):
    monkeypatch.setattr(registry, "experiments", lambda: {"toy": exp})
    return exp


@pytest.fixture
def toy(monkeypatch):
    return _use(monkeypatch, toy_experiment.EXPERIMENT)


def _clean(tmp_path: Path) -> tuple[dict, str]:
    req = resolve("toy", "quick", 0, {}, tmp_path / "clean", "cpu")
    s = execute(req, quiet=True)
    return s, (req.run_dir / "metrics.jsonl").read_text()


def _interrupted(tmp_path: Path, toy) -> object:
    return interrupted_toy_run(tmp_path / "cut", toy)


# ---- fault injection ---------------------------------------------------------------------
@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
@pytest.mark.parametrize("target", ["summary.json", "stages/d2.json", "checkpoints/d3.pt",
                                    "metrics.jsonl"])
def test_corrupted_store_file_is_recomputed_identically(toy, tmp_path, capfd, target, how):
    ref, ref_metrics = _clean(tmp_path)
    capfd.readouterr()
    if target == "summary.json":
        req = resolve("toy", "quick", 0, {}, tmp_path / "cut", "cpu")
        execute(req, quiet=True)
    else:
        req = _interrupted(tmp_path, toy)
    path = req.run_dir / target
    path.write_bytes(CORRUPTIONS[how](path.read_bytes()))
    s = execute(req, quiet=True)
    err = capfd.readouterr().err
    assert s["status"] == "complete" and not s.get("cached")
    assert s["results"] == ref["results"]
    assert (req.run_dir / "metrics.jsonl").read_text() == ref_metrics
    assert json.loads((req.run_dir / "summary.json").read_text())["results"] == ref["results"]
    assert len([ln for ln in err.splitlines() if "warning" in ln]) == 1, err


def test_files_and_directories_swapped_are_repaired(toy, tmp_path, capfd):
    ref, ref_metrics = _clean(tmp_path)
    req = _interrupted(tmp_path, toy)
    import shutil

    shutil.rmtree(req.run_dir / "checkpoints")
    (req.run_dir / "checkpoints").write_text("not a directory")
    (req.run_dir / "summary.json").mkdir()
    s = execute(req, quiet=True)
    assert s["status"] == "complete" and s["results"] == ref["results"]
    assert (req.run_dir / "metrics.jsonl").read_text() == ref_metrics
    assert capfd.readouterr().err.count("warning") == 2


def test_metrics_changed_under_the_run_is_recomputed(monkeypatch, tmp_path, capfd):
    ref, ref_metrics = _clean_with(monkeypatch, tmp_path)
    calls = {"n": 0}

    def run(cfg, ctx):
        calls["n"] += 1
        if calls["n"] == 1:
            real = ctx.stage

            def stage(key, fn):
                out = real(key, fn)
                ctx.metrics_path.write_text("")  # someone empties metrics.jsonl mid-run
                return out

            ctx.stage = stage
        return toy_experiment.run(cfg, ctx)

    _use(monkeypatch, dataclasses.replace(toy_experiment.EXPERIMENT, run=run))
    req = resolve("toy", "quick", 0, {}, tmp_path / "cut", "cpu")
    s = execute(req, quiet=True)
    assert calls["n"] == 2 and s["status"] == "complete"
    assert "warning" in capfd.readouterr().err
    assert (req.run_dir / "metrics.jsonl").read_text() == ref_metrics
    assert s["results"] == ref["results"]


def _clean_with(monkeypatch, tmp_path):
    _use(monkeypatch, toy_experiment.EXPERIMENT)
    return _clean(tmp_path)


def test_force_and_show_on_damaged_summary(toy, tmp_path, capsys):
    assert cli.main(["run", "toy", "--out", str(tmp_path)]) == 0
    (run_dir,) = (tmp_path / "toy").iterdir()
    for how, f in CORRUPTIONS.items():
        (run_dir / "summary.json").write_bytes(f(b'{"experiment": "toy"}'))
        capsys.readouterr()
        assert cli.main(["show", str(run_dir)]) == 2, how
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "summary.json" in err, err
        assert cli.main(["run", "toy", "--out", str(tmp_path), "--force"]) == 0
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"


def test_show_strips_control_characters_and_markup(toy, tmp_path, capsys):
    req = resolve("toy", "quick", 0, {}, tmp_path, "cpu")
    s = execute(req, quiet=True)
    s["experiment"] = "\x1b[31mevil\x1b]0;title\x07"
    s["claims"][0]["id"] = "[bold red]x[/bold red]"
    s["status"] = "complete"
    write_summary(req.run_dir, s)  # a hostile store can write a valid checksum too
    capsys.readouterr()
    assert cli.main(["show", str(req.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "[bold red]x[/bold red]" in out


def test_show_on_odd_field_types_is_a_table_or_one_line(tmp_path, capsys):
    """Every claim or summary field set to every JSON type: exit 0 with a table, or exit 2
    with one line; never a traceback."""
    base = {"experiment": "x", "run_id": "y", "status": "complete", "results": {},
            "claims": [{"id": "c", "holds": True}], "elapsed_s": 1}
    values = [None, "s", 1, 1.5, [], {}, [1, "x"], {"a": "b"}, True, [None, None], [[[]]]]
    docs = []
    for field in ("expected", "measured", "interval", "n", "statistic", "threshold", "verdict",
                  "kind", "parts", "paper"):
        docs += [{**base, "claims": [{**base["claims"][0], field: v}]} for v in values]
    for field in ("scale", "seed", "figures", "error", "diverged", "free_choices", "config"):
        docs += [{**base, field: v, "status": "failed" if field == "error" else "complete"}
                 for v in values]
    for doc in docs:
        (tmp_path / "summary.json").write_text(json.dumps(doc))
        rc = cli.main(["show", str(tmp_path)])
        err = capsys.readouterr().err
        assert rc in (0, 2) and (rc == 0 or len(err.strip().splitlines()) == 1), (doc, err)


def test_stale_stages_and_temp_files_are_cleaned(toy, tmp_path):
    req = _interrupted(tmp_path, toy)
    junk = [req.run_dir / ".toy.png.abc123.tmp", req.run_dir / ".toy.k2j3.png",
            req.run_dir / "stages" / ".d3.json.xyz.tmp"]
    for j in junk:
        j.write_bytes(b"x")
    s = execute(req, quiet=True)
    assert s["status"] == "complete"
    assert not any(j.exists() for j in junk)
    (req.run_dir / "stages").mkdir()
    (req.run_dir / "stages" / "d2.json").write_text("{}")  # left by a kill after summary.json
    assert execute(req, quiet=True)["cached"]
    assert not (req.run_dir / "stages").exists()


# ---- one writer per run directory --------------------------------------------------------
def test_second_writer_waits_and_returns_the_first_result(toy, tmp_path):
    req = resolve("toy", "quick", 0, {}, tmp_path, "cpu")
    held, results = threading.Event(), {}

    def first():
        with run_lock(req):
            held.set()
            time.sleep(0.5)
        results["first"] = execute(req, quiet=True)

    t = threading.Thread(target=first)
    t.start()
    held.wait()
    results["second"] = execute(req, quiet=True)  # waits for the lock, computes once
    t.join()
    assert {bool(r.get("cached")) for r in results.values()} == {True, False}
    lines = (req.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 20 * 2


def test_no_wait_exits_2_while_another_process_computes(toy, tmp_path, capsys):
    req = resolve("toy", "quick", 0, {}, tmp_path, "cpu")
    with run_lock(req):
        assert cli.main(["run", "toy", "--out", str(tmp_path), "--no-wait"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"pid {os.getpid()}" in err
    assert not req.run_dir.exists()


def test_reproduce_deduplicates_and_refuses_empty_only(toy, tmp_path, capsys):
    assert cli.main(["reproduce", "--out", str(tmp_path / "e"), "--only", " , "]) == 2
    assert not (tmp_path / "e").exists()
    assert cli.main(["reproduce", "--scale", "smoke", "--out", str(tmp_path), "--workers", "1",
                     "--only", "toy,toy, toy"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert md.count("## toy") == 1 and "1 experiments" in md and "1/1 claims hold" in md


# ---- divergence --------------------------------------------------------------------------
def _variant(monkeypatch, **kw):
    return _use(monkeypatch, dataclasses.replace(toy_experiment.EXPERIMENT, **kw))


def test_overflow_in_training_is_diverged_with_results_so_far(monkeypatch, tmp_path):
    def run(cfg, ctx):
        ctx.stage("first", lambda: 1.5)
        raise OverflowError("(34, 'Numerical result out of range')")

    _variant(monkeypatch, run=run)
    s = execute(resolve("toy", "quick", 0, {}, tmp_path, "cpu"), quiet=True)
    assert s["status"] == "diverged" and s["results"] == {"stages_done": {"first": 1.5}}
    assert "OverflowError" in s["diverged"][0]


def test_plot_failing_on_nan_is_diverged_with_the_figures_drawn(monkeypatch, tmp_path):
    from gradprobe import plots

    def plot(res, cfg, out_dir):
        fig, ax = plots.figure()
        ax[0, 0].plot([1, 2], [1, 2])
        plots.save(fig, out_dir / "first.png")
        raise ValueError("Axis limits cannot be NaN or Inf")

    _variant(monkeypatch, plot=plot)
    s = execute(resolve("toy", "quick", 0, {"blow_up": True}, tmp_path, "cpu"), quiet=True)
    assert s["status"] == "diverged" and s["figures"] == ["first.png"]
    assert s["results"]["norms"]["2"] > 0 and s["claims"]


def test_numeric_failures_are_told_from_bugs():
    """The errors NaN/Inf inputs really raise (torch and numpy SVD, sklearn's input check,
    overflow) count as divergence; a KeyError or a TypeError does not."""
    import numpy as np
    import torch

    from gradprobe.runs.store import is_numeric_failure

    def raised(fn):
        try:
            fn()
        except Exception as e:
            return e
        raise AssertionError("did not raise")

    nan = torch.full((4, 4), math.nan)
    numeric = [raised(lambda: torch.linalg.svd(nan)),
               raised(lambda: np.linalg.svd(np.full((4, 4), np.nan))),
               raised(lambda: math.exp(1e6)),
               ValueError("Input X contains NaN."),
               ValueError("Input contains infinity or a value too large for dtype('float64')."),
               RuntimeError("value cannot be converted to type float without overflow")]
    assert all(is_numeric_failure(e) for e in numeric), numeric
    assert not any(is_numeric_failure(e) for e in (KeyError("x"), TypeError("bad operand"),
                                                   ValueError("information is missing")))


def test_mark_diverged_and_a_real_bug_stays_failed(monkeypatch, tmp_path):
    def run(cfg, ctx):
        ctx.mark_diverged("loss became inf at step 3")
        return {"norms": {"2": 1.0}}

    _variant(monkeypatch, run=run)
    s = execute(resolve("toy", "quick", 0, {}, tmp_path / "a", "cpu"), quiet=True)
    assert s["status"] == "diverged" and s["diverged"] == ["loss became inf at step 3"]

    def buggy(cfg, ctx):
        raise KeyError("a bug")

    _variant(monkeypatch, run=buggy)
    s = execute(resolve("toy", "quick", 0, {}, tmp_path / "b", "cpu"), quiet=True)
    assert s["status"] == "failed"


def test_bad_data_found_while_running_is_exit_2_and_leaves_no_run(monkeypatch, tmp_path, capsys):
    from gradprobe.errors import DataError

    def run(cfg, ctx):
        raise DataError("data_batch_1.bin: 12 bytes is not a whole number of 3073-byte records")

    _variant(monkeypatch, run=run)
    assert cli.main(["run", "toy", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "3073-byte records" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "toy").exists() or not any((tmp_path / "toy").iterdir())


def test_full_disk_is_one_line(toy, monkeypatch, tmp_path, capsys):
    import errno

    from gradprobe.runs import atomic

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(atomic, "write_bytes", full)
    assert cli.main(["run", "toy", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gradprobe: error: No space left on device: ")
    assert len(err.strip().splitlines()) == 1


# ---- bad input: exit 2, one line, nothing written ----------------------------------------
LONG = "a" * 300


@pytest.mark.parametrize("args, needle", [
    (["run", "vanishing", "--set", "lr=Infinity"], "lr: inf is not a finite number"),
    (["run", "vanishing", "--set", "lr=NaN"], "not a finite number"),
    (["run", "parity", "--set", "iterations=1e30"], "iterations: ~10^30 is out of range"),
    (["run", "activations", "--set", "grid=1000000000000"], "grid"),
    (["run", "activations", "--set", "betas=[]"], "betas: must not be empty"),
    (["run", "shattered_1d", "--set", 'archs=["resnet","resnet"]'], "more than once"),
    (["run", "parity", "--set", "lr=0.1", "--set", "lr=0.2"], "given twice"),
    (["run", "parity", "--set", "dims=" + "[" * 50_000], "at most 10000"),
    (["run", "parity", "--set", "dims=" + "[" * 5_000], "nested too deeply"),
    (["run", "parity", "--seed", "-1"], "--seed -1 is out of range"),
    (["run", "parity", "--out", "{tmp}/" + LONG], "is 300 bytes"),
    (["run", "parity", "--out", "{file}"], "is an existing file"),
    (["run", "parity", "--out", "{file}/sub"], "is an existing file"),
    (["reproduce", "--only", " , "], "--only names no experiment"),
    (["reproduce", "--only", "parity", "--workers", "0"], "--workers 0 is out of range"),
    (["reproduce", "--only", "parity", "--address", "x:1"], "--address is for --backend ray"),
    (["reproduce", "--only", "parity", "--backend", "ray", "--address", "nocolon"],
     "is not HOST:PORT"),
    (["reproduce", "--only", "parity", "--backend", "ray", "--address", "127.0.0.1:1"],
     "cannot reach a Ray head"),
    (["diagnose", "x.py:f", "--seed", str(10**22)], "--seed ~10^22 is out of range"),
    (["diagnose", "x.py:f", "--max-samples", "0"], "--max-samples 0 is out of range"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    file = tmp_path / "afile"
    file.write_text("x")
    args = [a.replace("{tmp}", str(tmp_path / "o")).replace("{file}", str(file)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "o")]
    before = sorted(tmp_path.rglob("*"))
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("var, value", [("GRADPROBE_THREADS", "abc"), ("GRADPROBE_THREADS", "0"),
                                        ("GRADPROBE_CHECKPOINT_EVERY", "abc"),
                                        ("GRADPROBE_CHECKPOINT_EVERY", "-1"),
                                        ("GRADPROBE_CHECKPOINT_EVERY", "nan")])
def test_bad_environment_is_a_usage_error(monkeypatch, tmp_path, capsys, var, value):
    monkeypatch.setenv(var, value)
    assert cli.main(["run", "parity", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert var in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_generic_limits_and_declared_limits():
    @dataclasses.dataclass(frozen=True)
    class Cfg(ExperimentConfig):
        LIMITS: ClassVar[dict] = {"width": (1, 64)}
        ALLOW_DUPLICATES: ClassVar[frozenset] = frozenset({"reps"})
        n: int = 100
        width: int = 8
        reps: tuple[int, ...] = (1,)
        lr: float = 0.1

    assert apply_overrides(Cfg(), {"n": 10_000, "reps": [2, 2]}).reps == (2, 2)
    for bad, needle in [({"n": 10_001}, "at most 10,000"), ({"width": 65}, "valid: 1 to 64"),
                        ({"lr": math.inf}, "finite"), ({"reps": []}, "empty"),
                        ({"lr": 10**400}, "too large")]:
        with pytest.raises(ConfigError, match=needle):
            apply_overrides(Cfg(), bad)
    # every scale of every real experiment passes its own generic limits
    from gradprobe.config import check_limits

    for exp in registry.experiments().values():
        for scale in ("smoke", "quick", "paper"):
            cfg = exp.config.for_scale(scale)
            for f in dataclasses.fields(cfg):
                check_limits(type(cfg), f.name, getattr(cfg, f.name))
    with pytest.raises(ConfigError):
        parse_overrides(["a=1", "a=1"])


# ---- report ------------------------------------------------------------------------------
def test_report_escapes_and_respects_umask(tmp_path):
    from gradprobe.report.build import write_report

    evil = {"experiment": "<script>alert(1)</script>", "run_id": "x'><b class=e>",
            "status": "<img src=x onerror=alert(1)>", "results": {"<s class=e>": 1},
            "claims": [{"id": "<i class=e>", "expected": "<u class=e>", "measured": 1,
                        "holds": True, "paper": "<p class=e>"}], "elapsed_s": 1.0}
    old = os.umask(0o022)
    try:
        md, html = write_report([evil], tmp_path, scale="smoke")
    finally:
        os.umask(old)
    text = html.read_text()
    for tag in ("<script>", "<img src=x", "<i class", "<u class", "<p class", "<b class",
                "<s class"):
        assert tag not in text
    assert (html.stat().st_mode & 0o777) == 0o644 and (md.stat().st_mode & 0o777) == 0o644


# ---- backends ----------------------------------------------------------------------------
def test_unreachable_ray_address_exits_2_fast():
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "gradprobe.cli", "reproduce", "--backend", "ray",
                        "--address", "bogus.invalid:6379", "--only", "parity", "--scale",
                        "smoke", "--out", "/nonexistent-gradprobe-out"],
                       capture_output=True, text=True, env=ENV, timeout=60)
    assert time.monotonic() - t < 30
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot reach a Ray head at bogus.invalid:6379" in r.stderr


def _wait_for(pred, timeout: float = 120.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _holder_pid(out: Path) -> int | None:
    for lock in out.glob(".locks/*"):
        text = lock.read_text().strip()
        if text.isdigit():
            return int(text)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_two_processes_on_one_config_compute_once(tmp_path):
    """Two `gradprobe run` of the same config at once: one computes, the other waits for the
    lock and returns the cached result; metrics.jsonl holds every point once."""
    cmd = [sys.executable, "-m", "gradprobe.cli", "run", "vanishing", "--scale", "smoke",
           "--device", "cpu", "--out", str(tmp_path)]
    procs = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum("(cached)" in o for o, _ in outs) == 1, outs
    (run_dir,) = (tmp_path / "vanishing").iterdir()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert lines and len(lines) == len(set(lines))


@pytest.mark.slow
def test_kill_9_of_reproduce_takes_its_workers(tmp_path):
    out = tmp_path / "o"
    p = subprocess.Popen([sys.executable, "-m", "gradprobe.cli", "reproduce", "--scale", "smoke",
                          "--only", "vanishing,activations", "--workers", "2", "--out", str(out)],
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: _holder_pid(out) not in (None, p.pid))
    worker = _holder_pid(out)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert _wait_for(lambda: not _alive(worker), timeout=10), "worker outlived its parent"


@pytest.mark.slow
@pytest.mark.skipif(not all(map(__import__("importlib.util").util.find_spec, ["ray"])),
                    reason="ray not installed")
def test_ray_worker_killed_mid_task_is_retried(tmp_path):
    """SIGKILL the Ray worker that holds the run's lock; Ray retries the task, which resumes
    from its checkpoint and ends with the results of an undisturbed run."""
    ref = execute(resolve("vanishing", "smoke", 0, {}, tmp_path / "ref", "cpu"), quiet=True)
    out = tmp_path / "ray"
    env = {**ENV, "GRADPROBE_CHECKPOINT_EVERY": "0.2"}
    p = subprocess.Popen([sys.executable, "-m", "gradprobe.cli", "reproduce", "--scale", "smoke",
                          "--only", "vanishing", "--backend", "ray", "--workers", "1",
                          "--device", "cpu", "--out", str(out)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert _wait_for(lambda: _holder_pid(out) is not None, timeout=240)
    killed = _holder_pid(out)
    os.kill(killed, signal.SIGKILL)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    assert _holder_pid(out) not in (None, killed, p.pid)  # a new worker took the run over
    (path,) = out.glob("vanishing/*/summary.json")
    s = json.loads(path.read_text())
    assert s["status"] == "complete" and s["results"] == ref["results"]
    lines = (path.parent / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines))


@pytest.mark.slow
@pytest.mark.skipif(not all(map(__import__("importlib.util").util.find_spec, ["submitit"])),
                    reason="submitit not installed")
def test_slurm_backend_with_submitit_local_matches_local(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gradprobe.cli", "reproduce", "--scale", "smoke",
                        "--only", "activations", "--backend", "slurm", "--slurm-cluster", "local",
                        "--device", "cpu", "--out", str(tmp_path / "slurm")],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (path,) = (tmp_path / "slurm").glob("activations/*/summary.json")
    direct = execute(resolve("activations", "smoke", 0, {}, tmp_path / "local", "cpu"),
                     quiet=True)
    assert json.loads(path.read_text())["results"] == direct["results"]


def test_a_dead_worker_is_a_failed_run_not_a_lost_report(toy, monkeypatch, tmp_path, capsys):
    from concurrent.futures.process import BrokenProcessPool

    from gradprobe.runs import backends

    def dies(*args):
        raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(backends, "run_by_name", dies)
    assert cli.main(["reproduce", "--scale", "smoke", "--out", str(tmp_path), "--workers", "1",
                     "--only", "toy"]) == 3
    md = (tmp_path / "report.md").read_text()
    assert "## toy" in md and "run the same command again" in md


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n"])
def test_a_port_that_is_not_a_ray_head_is_refused_quickly(reply):
    """A listener that never answers (ray.init would wait minutes) or answers HTTP/1.1."""
    import socket

    from gradprobe.runs.backends import check_ray_address

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve():
        conn, _ = srv.accept()
        if reply:
            conn.sendall(reply)
        time.sleep(3)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    t = time.monotonic()
    with pytest.raises(UsageError, match="is not a Ray head"):
        check_ray_address(f"127.0.0.1:{port}", timeout_s=1)
    assert time.monotonic() - t < 5
    srv.close()


def test_check_ray_address_refuses_quickly():
    from gradprobe.runs.backends import check_ray_address

    for bad in ("bogus.invalid:6379", "127.0.0.1:1", "host:notaport", "ray://:5"):
        t = time.monotonic()
        with pytest.raises(UsageError):
            check_ray_address(bad, timeout_s=5)
        assert time.monotonic() - t < 10
