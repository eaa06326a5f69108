"""RunContext: what an experiment's run() gets — device, seeds, metrics log, progress, resume.

Resume protocol. metrics.jsonl is append-only; every checkpoint and every finished stage records
the byte length of metrics.jsonl at that moment. A restarted run truncates metrics.jsonl to the
largest recorded length, so the points logged after the last checkpoint are logged again, exactly
once, by the resumed computation. Stages (`ctx.stage(key, fn)`) memoise whole sub-computations;
checkpoints (`ctx.save_checkpoint`) cover long loops inside a stage and are cleared when it ends.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from gradprobe.runs.atomic import clean_json, write_bytes
from gradprobe.runtime import generator


class RunContext:
    """Handed to `Experiment.run`. All paths live under `run_dir`."""

    def __init__(
        self,
        run_dir: Path,
        seed: int,
        device: torch.device,
        quiet: bool = False,
        checkpoint_every_s: float | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.seed = int(seed)
        self.device = device
        self.quiet = quiet
        if checkpoint_every_s is None:
            checkpoint_every_s = float(os.environ.get("GRADPROBE_CHECKPOINT_EVERY", "30"))
        self.checkpoint_every_s = checkpoint_every_s
        self._last_checkpoint = time.monotonic()
        self._saves = 0  # checkpoints and stages written by this process (fault injection)
        self._ckpt_dir = self.run_dir / "checkpoints"
        self._stage_dir = self.run_dir / "stages"
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.resumed = False
        self.diverged: list[str] = []  # reasons, from fit() or an experiment (mark_diverged)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._restore_metrics()
        self._metrics = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115

    # ---- seeds -------------------------------------------------------------------------
    def generator(self, *keys: object, device: torch.device | str | None = None) -> torch.Generator:
        """A generator seeded from (run seed, *keys), on the run's device unless told."""
        return generator(self.seed, *keys, device=device if device is not None else self.device)

    # ---- metrics -----------------------------------------------------------------------
    def log(self, series: str, step: int | None = None, **values: Any) -> None:
        """Append one point to metrics.jsonl: {"series": ..., "step": ..., **values}."""
        row = {"series": series, "step": step, **values}
        self._metrics.write(json.dumps(clean_json(row)) + "\n")

    def _metrics_offset(self) -> int:
        self._metrics.flush()
        return self.metrics_path.stat().st_size

    def _restore_metrics(self) -> None:
        offsets = [0]
        for path in list(self._ckpt_dir.glob("*.pt")):
            try:
                offsets.append(int(torch.load(path, weights_only=True)["metrics_offset"]))
                self.resumed = True
            except Exception:  # a torn checkpoint: ignore it, the stage reruns
                path.unlink(missing_ok=True)
        for path in self._stage_dir.glob("*.json"):
            offsets.append(int(json.loads(path.read_text())["metrics_offset"]))
            self.resumed = True
        if self.metrics_path.exists():
            with open(self.metrics_path, "r+b") as f:
                f.truncate(min(max(offsets), self.metrics_path.stat().st_size))

    def mark_diverged(self, reason: str) -> None:
        """Record that a computation met NaN/Inf: the run ends with status 'diverged'."""
        self.diverged.append(str(reason))

    # ---- progress ----------------------------------------------------------------------
    @contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[[int], None]]:
        """Progress bar; yields advance(n). Silent when quiet (worker processes, tests)."""
        if self.quiet:
            yield lambda n=1: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*cols, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)

    # ---- resume ------------------------------------------------------------------------
    def stage(self, key: str, fn: Callable[[], Any]) -> Any:
        """Run fn() once per run: its JSON-able result is stored and reused on resume."""
        path = self._stage_dir / f"{_safe(key)}.json"
        if path.exists():
            return json.loads(path.read_text())["result"]
        result = clean_json(fn(), strict=False)  # NaN kept: the run must still read as diverged
        doc = {"result": result, "metrics_offset": self._metrics_offset()}
        write_bytes(path, json.dumps(doc).encode())
        for ckpt in self._ckpt_dir.glob("*.pt"):
            ckpt.unlink()
        self._saved()
        return result

    def checkpoint_due(self) -> bool:
        """True when checkpoint_every_s seconds have passed since the last save."""
        return time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s

    def save_checkpoint(self, state: dict[str, Any], name: str = "state") -> None:
        """Atomically save state (tensors, numbers, lists, dicts only: loaded weights_only)."""
        import io

        buf = io.BytesIO()
        torch.save({"state": state, "metrics_offset": self._metrics_offset()}, buf)
        write_bytes(self._ckpt_dir / f"{_safe(name)}.pt", buf.getvalue())
        self._last_checkpoint = time.monotonic()
        self._saved()

    def _saved(self) -> None:
        """Fault injection for the resume tests: GRADPROBE_FAULT_KILL_AFTER_SAVES=N makes this
        process SIGKILL itself right after its N-th checkpoint or stage write."""
        self._saves += 1
        if os.environ.get("GRADPROBE_FAULT_KILL_AFTER_SAVES") == str(self._saves):
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    def load_checkpoint(self, name: str = "state") -> dict[str, Any] | None:
        """The last saved state under `name`, or None. Loaded with weights_only=True."""
        path = self._ckpt_dir / f"{_safe(name)}.pt"
        if not path.exists():
            return None
        return torch.load(path, weights_only=True, map_location="cpu")["state"]

    def close(self) -> None:
        self._metrics.close()

    def cleanup(self) -> None:
        """After a complete run: drop checkpoints and stage files (summary.json has it all)."""
        import shutil

        shutil.rmtree(self._ckpt_dir, ignore_errors=True)
        shutil.rmtree(self._stage_dir, ignore_errors=True)


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in key)
