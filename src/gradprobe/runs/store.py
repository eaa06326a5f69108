"""Run directories: <out>/<experiment>/<run_id>/ with config.json, metrics.jsonl, summary.json.

run_id is a short hash of the resolved config (experiment, scale, seed, every config field and
the resolved device type), so the same request finds the same directory: a finished run is
returned as it is, an interrupted one resumes from its checkpoints. One writer per run directory
(`run_lock`); every file read back is validated, and a damaged one is reported in one warning
line and recomputed (see runs/context.py). Non-finite numbers anywhere — training, claims,
plotting — end as `status: diverged` with the results so far, never as a crash.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import gradprobe
from gradprobe.config import ExperimentConfig, apply_overrides
from gradprobe.errors import UsageError
from gradprobe.experiments import registry
from gradprobe.experiments.base import Experiment
from gradprobe.runs.atomic import clean_json, clean_temp_files, has_nonfinite, write_json
from gradprobe.runs.context import RunContext, StoreDamaged, warn
from gradprobe.runtime import pick_device


@dataclass(frozen=True)
class RunRequest:
    """Everything that identifies a run; resolved (and validated) before anything is written."""

    experiment: Experiment
    config: ExperimentConfig
    scale: str
    seed: int
    device: torch.device
    out: Path

    @property
    def resolved(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.name,
            "scale": self.scale,
            "seed": self.seed,
            "device": self.device.type,
            "config": self.config.to_dict(),
        }

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.resolved, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    @property
    def run_dir(self) -> Path:
        return self.out / self.experiment.name / self.run_id


def resolve(
    name: str,
    scale: str = "quick",
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    out: Path | str = "runs",
    device: str = "auto",
) -> RunRequest:
    """Check every input (name, scale, overrides, device, data) and build the request."""
    exp = registry.get(name)
    cfg = exp.config.for_scale(scale)
    cfg = apply_overrides(cfg, overrides or {})
    cfg.validate()
    dev = pick_device(device)
    if exp.preflight is not None:
        exp.preflight(cfg)
    return RunRequest(exp, cfg, scale, int(seed), dev, Path(out))


STATUSES = ("complete", "diverged", "failed")
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
_NUMERIC_TEXT = re.compile(r"\b(nan|inf|infinity|non-?finite|not finite|overflow|log-scaled|"
                           r"did not converge|failed to converge)\b", re.IGNORECASE)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """summary.json of run_dir, validated; None when there is none. Raises StoreDamaged (one
    line naming the file and the problem) when it cannot be read or is not a summary."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_bytes())
    except OSError as e:
        raise StoreDamaged(f"{path} cannot be read ({e.strerror})") from e
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError too
        raise StoreDamaged(f"{path} is not valid JSON (truncated or damaged)") from e
    problem = _summary_problem(doc)
    if problem:
        raise StoreDamaged(f"{path} is not a gradprobe summary: {problem}")
    if doc.get("checksum") != summary_checksum(doc):
        raise StoreDamaged(f"{path} does not match its checksum (damaged, edited, or written "
                           "by another version)")
    return doc


def summary_checksum(doc: dict[str, Any]) -> str:
    """sha256 of the summary without its `checksum` field (canonical JSON, sorted keys)."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write summary.json atomically with its checksum (read_summary verifies it)."""
    doc = clean_json(summary)
    doc.pop("checksum", None)
    doc["checksum"] = summary_checksum(doc)
    write_json(Path(run_dir) / "summary.json", doc)


def load_summary(run_dir: Path) -> dict[str, Any] | None:
    """Compatibility name for read_summary."""
    return read_summary(run_dir)


def _summary_problem(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return f"expected a JSON object, found {type(doc).__name__}"
    for key, tp in (("experiment", str), ("run_id", str), ("status", str), ("results", dict),
                    ("claims", list)):
        if not isinstance(doc.get(key), tp):
            return f"field {key!r} is missing or not a {tp.__name__}"
    if doc["status"] not in STATUSES:
        return f"status {doc['status'][:40]!r} is not one of {', '.join(STATUSES)}"
    for c in doc["claims"]:
        if not (isinstance(c, dict) and isinstance(c.get("id"), str)
                and isinstance(c.get("holds"), bool)):
            return "a claim lacks a string 'id' or a boolean 'holds'"
    figures = doc.get("figures", [])
    if not (isinstance(figures, list) and all(isinstance(f, str) for f in figures)):
        return "field 'figures' is not a list of file names"
    for key in ("config", "free_choices"):
        if not isinstance(doc.get(key, {}), dict | None):
            return f"field {key!r} is not an object"
    e = doc.get("elapsed_s", 0)
    if isinstance(e, bool) or not isinstance(e, int | float):
        return "field 'elapsed_s' is not a number"
    return None


@contextmanager
def run_lock(req: RunRequest, wait: bool = True, quiet: bool = False) -> Iterator[None]:
    """Hold the run directory's lock (fcntl.flock on <out>/.locks/<experiment>.<run_id>; the
    kernel releases it when the holder dies). A second writer waits, or, with wait=False,
    gets a UsageError naming the holder's pid."""
    path = req.out / ".locks" / f"{req.experiment.name}.{req.run_id}"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            if not wait:
                raise UsageError(f"{req.run_dir} is being computed by another gradprobe process "
                                 f"(pid {holder}); drop --no-wait to wait for its result") from None
            if not quiet:
                warn(f"waiting for pid {holder}, which is computing {req.run_dir}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def execute(req: RunRequest, force: bool = False, quiet: bool = False,
            wait: bool = True) -> dict[str, Any]:
    """Run (or reuse, or resume) one experiment; returns its summary. Never raises for a
    failing experiment: that is recorded as status 'failed' with the traceback in run.log.
    Holds the run directory's lock throughout (see run_lock)."""
    with run_lock(req, wait=wait, quiet=quiet):
        return _execute_locked(req, force, quiet)


def _execute_locked(req: RunRequest, force: bool, quiet: bool) -> dict[str, Any]:
    run_dir = req.run_dir
    _repair_layout(run_dir)
    if not force:
        try:
            old = read_summary(run_dir)
        except StoreDamaged as e:
            warn(f"{e}; recomputing")
            old = None
        if old is not None and (old["run_id"], old["experiment"]) != (req.run_id,
                                                                        req.experiment.name):
            warn(f"{run_dir / 'summary.json'} belongs to another run "
                 f"({old['experiment'][:40]!r}, {old['run_id'][:20]!r}); recomputing")
            old = None
        if old is not None and old["status"] in ("complete", "diverged"):
            for stale in ("stages", "checkpoints"):  # left by a kill after summary.json
                shutil.rmtree(run_dir / stale, ignore_errors=True)
            old["cached"] = True
            return old
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    clean_temp_files(run_dir)
    for stale in run_dir.glob(".*.png"):  # temp figures of version 0.1
        stale.unlink(missing_ok=True)
    (run_dir / "summary.json").unlink(missing_ok=True)
    config_doc = {
        **req.resolved,
        "run_id": req.run_id,
        "version": gradprobe.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
    }
    write_json(run_dir / "config.json", config_doc)
    try:
        return _compute(req, quiet)
    except UsageError:  # bad input found only while running (a malformed data file): exit 2
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    except StoreDamaged as e:
        warn(f"{e}; recomputing {run_dir} from the start")
        for sub in ("stages", "checkpoints"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        return _compute(req, quiet, last_try=True)


def _repair_layout(run_dir: Path) -> None:
    """Files where the store keeps directories and directories where it keeps files (a foreign
    or damaged run directory) are removed, with one warning line each."""
    for name, want_dir in (("stages", True), ("checkpoints", True), ("summary.json", False),
                           ("metrics.jsonl", False), ("config.json", False)):
        path = run_dir / name
        if path.is_symlink() or (path.exists() and path.is_dir() != want_dir):
            warn(f"{path} is not a {'directory' if want_dir else 'file'}; removing it")
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def is_numeric_failure(exc: BaseException) -> bool:
    """True for errors that non-finite or overflowing numbers cause (divergence, not a bug):
    FloatingPointError, OverflowError, linear-algebra failures, and value errors that say so."""
    import numpy as np

    if isinstance(exc, FloatingPointError | OverflowError | torch.linalg.LinAlgError
                  | np.linalg.LinAlgError):
        return True
    return isinstance(exc, ValueError | RuntimeError) and bool(_NUMERIC_TEXT.search(str(exc)))


def _compute(req: RunRequest, quiet: bool, last_try: bool = False) -> dict[str, Any]:
    run_dir = req.run_dir
    ctx = RunContext(run_dir, req.seed, req.device, quiet=quiet)
    start, wall = time.perf_counter(), time.time()
    base = {
        "experiment": req.experiment.name,
        "spec": req.experiment.spec,
        "title": req.experiment.title,
        "source": req.experiment.source,
        "run_id": req.run_id,
        "scale": req.scale,
        "seed": req.seed,
        "config": req.config.to_dict(),
        "free_choices": req.config.free_choices(),
    }

    def failed(exc: BaseException) -> dict[str, Any]:
        ctx.close()
        log = run_dir / "run.log"
        log.write_text(traceback.format_exc())
        summary = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                   "log": str(log), "results": {}, "claims": [],
                   "elapsed_s": round(time.perf_counter() - start, 2),
                   "device": req.device.type, "version": gradprobe.__version__}
        write_summary(run_dir, summary)
        return summary

    def fatal(exc: BaseException) -> bool:  # bad input or the store's trouble: not a failure
        if isinstance(exc, UsageError):
            return True
        if isinstance(exc, StoreDamaged):
            return not last_try
        return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS

    partial = False
    try:
        results = req.experiment.run(req.config, ctx)
    except Exception as exc:  # recorded, reported with exit code 3 by the CLI
        if fatal(exc):
            ctx.close()
            raise
        if not is_numeric_failure(exc):
            return failed(exc)
        ctx.mark_diverged(f"{type(exc).__name__}: {exc}")
        results, partial = {"stages_done": dict(ctx.stages_done)}, True
    claims: list[dict[str, Any]] = []
    figures: list[str] = []
    try:
        if has_nonfinite(results):
            ctx.mark_diverged("non-finite values in the results")
        if not partial:
            claims = [c.to_dict() for c in req.experiment.claims(results, req.config)]
            figures = [Path(p).name for p in req.experiment.plot(results, req.config, run_dir)]
        ctx.verify_metrics()
    except Exception as exc:
        if fatal(exc):
            ctx.close()
            raise
        if not ctx.diverged and not is_numeric_failure(exc):
            return failed(exc)
        ctx.mark_diverged(f"{type(exc).__name__}: {exc}")
        figures = sorted(p.name for p in run_dir.glob("*.png") if p.stat().st_mtime >= wall - 1)
    ctx.close()
    summary = {
        **base,
        "status": "diverged" if ctx.diverged else "complete",
        "results": clean_json(results),
        "claims": claims,
        "figures": figures,
        "resumed": ctx.resumed,
        "elapsed_s": round(time.perf_counter() - start, 2),
        "device": req.device.type,
        "version": gradprobe.__version__,
    }
    if ctx.diverged:
        summary["diverged"] = [reason[:500] for reason in ctx.diverged[:20]]
    write_summary(run_dir, summary)
    ctx.cleanup()
    return summary


def run_by_name(name: str, scale: str, seed: int, overrides: dict[str, Any], out: str,
                device: str, force: bool, quiet: bool, wait: bool = True) -> dict[str, Any]:
    """Picklable entry point for process pools, Ray tasks and Slurm jobs."""
    from gradprobe.runtime import set_threads

    set_threads()
    return execute(resolve(name, scale, seed, overrides, out, device), force=force, quiet=quiet,
                   wait=wait)
