"""Run directories: <out>/<experiment>/<run_id>/ with config.json, metrics.jsonl, summary.json.

run_id is a short hash of the resolved config (experiment, scale, seed, every config field and
the resolved device type), so the same request finds the same directory: a finished run is
returned as it is, an interrupted one resumes from its checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import gradprobe
from gradprobe.config import ExperimentConfig, apply_overrides
from gradprobe.experiments import registry
from gradprobe.experiments.base import Experiment
from gradprobe.runs.atomic import clean_json, has_nonfinite, write_json
from gradprobe.runs.context import RunContext
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


def load_summary(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def execute(req: RunRequest, force: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Run (or reuse, or resume) one experiment; returns its summary. Never raises for a
    failing experiment: that is recorded as status 'failed' with the traceback in run.log."""
    run_dir = req.run_dir
    old = load_summary(run_dir)
    if old is not None and not force and old.get("status") in ("complete", "diverged"):
        old["cached"] = True
        return old
    if force and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
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
    ctx = RunContext(run_dir, req.seed, req.device, quiet=quiet)
    start = time.perf_counter()
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
    try:
        results = req.experiment.run(req.config, ctx)
        status = "diverged" if ctx.diverged or has_nonfinite(results) else "complete"
        claims = [c.to_dict() for c in req.experiment.claims(results, req.config)]
        figures = [Path(p).name for p in req.experiment.plot(results, req.config, run_dir)]
    except Exception as exc:  # recorded, reported with exit code 3 by the CLI
        ctx.close()
        log = run_dir / "run.log"
        log.write_text(traceback.format_exc())
        summary = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                   "log": str(log), "results": {}, "claims": [],
                   "elapsed_s": round(time.perf_counter() - start, 2),
                   "device": req.device.type, "version": gradprobe.__version__}
        write_json(run_dir / "summary.json", summary)
        return summary
    ctx.close()
    summary = {
        **base,
        "status": status,
        "results": clean_json(results),
        "claims": claims,
        "figures": figures,
        "resumed": ctx.resumed,
        **({"diverged": ctx.diverged} if ctx.diverged else {}),
        "elapsed_s": round(time.perf_counter() - start, 2),
        "device": req.device.type,
        "version": gradprobe.__version__,
    }
    write_json(run_dir / "summary.json", summary)
    ctx.cleanup()
    return summary


def run_by_name(name: str, scale: str, seed: int, overrides: dict[str, Any], out: str,
                device: str, force: bool, quiet: bool) -> dict[str, Any]:
    """Picklable entry point for process pools and Ray tasks."""
    from gradprobe.runtime import set_threads

    set_threads()
    return execute(resolve(name, scale, seed, overrides, out, device), force=force, quiet=quiet)
