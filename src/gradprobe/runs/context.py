"""RunContext: what an experiment's run() gets — device, seeds, metrics log, progress, resume.

Resume protocol. metrics.jsonl is append-only; every checkpoint and every finished stage records
the byte length and line count of metrics.jsonl at that moment. A restarted run truncates
metrics.jsonl to the largest recorded length, so the points logged after the last checkpoint are
logged again, exactly once, by the resumed computation. Stages (`ctx.stage(key, fn)`) memoise
whole sub-computations; checkpoints (`ctx.save_checkpoint`) cover long loops inside a stage and
are cleared when it ends.

Validation. Stage files and checkpoints carry a sha256 of their payload, and the recorded metrics
length and line count must match metrics.jsonl. A damaged stage file or metrics file cannot be
placed in the metrics log, so the run starts over (one warning line); a damaged checkpoint is
dropped with the others and its stage reruns from the last finished stage. While the run goes on,
metrics.jsonl must keep the length this context wrote; if something else truncates or appends to
it, `StoreDamaged` is raised and the store recomputes the run.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from gradprobe.runs.atomic import checksum, clean_json, write_bytes
from gradprobe.runtime import checkpoint_every_from_env, generator

CKPT_MAGIC = b"GPCKPT1 "  # then 64 hex digits of sha256(payload), a newline, the torch payload


class StoreDamaged(Exception):
    """A file of the run directory changed under the run or does not validate."""


def warn(message: str) -> None:
    """One warning line on stderr (not warnings.warn: the message is for the user)."""
    print(f"gradprobe: warning: {message}", file=sys.stderr, flush=True)


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
            checkpoint_every_s = checkpoint_every_from_env()
        self.checkpoint_every_s = checkpoint_every_s
        self._last_checkpoint = time.monotonic()
        self._ckpt_dir = self.run_dir / "checkpoints"
        self._stage_dir = self.run_dir / "stages"
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.resumed = False
        self.diverged: str | None = None  # the reason, once mark_diverged was called
        self.stages_done: dict[str, Any] = {}  # key → result, in order: the results so far
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._size, self._lines = self._restore_metrics()
        self._metrics = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115

    # ---- seeds -------------------------------------------------------------------------
    def generator(self, *keys: object, device: torch.device | str | None = None) -> torch.Generator:
        """A generator seeded from (run seed, *keys), on the run's device unless told."""
        return generator(self.seed, *keys, device=device if device is not None else self.device)

    # ---- divergence --------------------------------------------------------------------
    def mark_diverged(self, reason: str) -> None:
        """Record that the computation went non-finite; the run ends as `status: diverged`
        with whatever results it returns (training loops call this instead of raising)."""
        if self.diverged is None:
            self.diverged = str(reason)

    # ---- metrics -----------------------------------------------------------------------
    def log(self, series: str, step: int | None = None, **values: Any) -> None:
        """Append one point to metrics.jsonl: {"series": ..., "step": ..., **values}."""
        row = {"series": series, "step": step, **values}
        line = json.dumps(clean_json(row)) + "\n"
        self._metrics.write(line)
        self._size += len(line.encode())
        self._lines += 1

    def _metrics_mark(self) -> tuple[int, int]:
        """(byte length, line count) of metrics.jsonl, checked against what this run wrote."""
        self._metrics.flush()
        size = self.metrics_path.stat().st_size if self.metrics_path.exists() else -1
        if size != self._size:
            raise StoreDamaged(f"{self.metrics_path} is {size} bytes but this run wrote "
                               f"{self._size}: it was changed under the run")
        return self._size, self._lines

    def verify_metrics(self) -> None:
        """Raise StoreDamaged unless metrics.jsonl holds exactly the lines this run wrote."""
        self._metrics_mark()
        if _count_lines(self.metrics_path, self._size) != self._lines:
            raise StoreDamaged(f"{self.metrics_path} does not hold the {self._lines} lines "
                               "this run wrote")

    def _restore_metrics(self) -> tuple[int, int]:
        """Validate stages and checkpoints, truncate metrics.jsonl to the last recorded mark;
        returns that (length, lines). Damage is reported in one line and recomputed."""
        stages = {}
        damaged = []
        for path in sorted(self._stage_dir.glob("*.json")):
            doc = _read_stage(path)
            if doc is None:
                damaged.append(path)
            else:
                stages[path] = doc
        ckpts = {}
        bad_ckpt = []
        for path in sorted(self._ckpt_dir.glob("*.pt")):
            doc = _read_checkpoint(path)
            if doc is None:
                bad_ckpt.append(path)
            else:
                ckpts[path] = doc
        size = self.metrics_path.stat().st_size if self.metrics_path.exists() else 0
        marks = [(d["metrics_offset"], d["metrics_lines"]) for d in stages.values()]
        if not damaged and marks:
            off, lines = max(marks)
            if off > size or _count_lines(self.metrics_path, off) != lines:
                damaged.append(self.metrics_path)
        if damaged:
            warn(f"{damaged[0]} is damaged; recomputing {self.run_dir} from the start")
            self._wipe()
            return 0, 0
        base = max(marks, default=(0, 0))
        if bad_ckpt:
            warn(f"{bad_ckpt[0]} is damaged; dropping checkpoints, resuming from the last "
                 "finished stage")
            shutil.rmtree(self._ckpt_dir, ignore_errors=True)
            ckpts = {}
        cmarks = [(d["metrics_offset"], d["metrics_lines"]) for d in ckpts.values()]
        if cmarks:
            off, lines = max(cmarks)
            if off > size or off < base[0] or _count_lines(self.metrics_path, off) != lines:
                warn(f"{self.metrics_path} does not match the checkpoints; dropping them, "
                     "resuming from the last finished stage")
                shutil.rmtree(self._ckpt_dir, ignore_errors=True)
                cmarks = []
        off, lines = max([base, *cmarks])
        self.resumed = bool(stages or cmarks)
        if self.metrics_path.exists():
            with open(self.metrics_path, "r+b") as f:
                f.truncate(off)
        return off, lines

    def _wipe(self) -> None:
        shutil.rmtree(self._stage_dir, ignore_errors=True)
        shutil.rmtree(self._ckpt_dir, ignore_errors=True)
        self.metrics_path.unlink(missing_ok=True)

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
        doc = _read_stage(path) if path.exists() else None
        if doc is not None and doc["key"] == key:
            self.stages_done[key] = doc["result"]
            return doc["result"]
        result = clean_json(fn(), strict=False)  # NaN kept: the run must still read as diverged
        offset, lines = self._metrics_mark()
        body = {"key": key, "result": result, "metrics_offset": offset, "metrics_lines": lines}
        payload = json.dumps(body, sort_keys=True)
        write_bytes(path, json.dumps({**body, "sha256": checksum(payload.encode())}).encode())
        for ckpt in self._ckpt_dir.glob("*.pt"):
            ckpt.unlink()
        self.stages_done[key] = result
        return result

    def checkpoint_due(self) -> bool:
        """True when checkpoint_every_s seconds have passed since the last save."""
        return time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s

    def save_checkpoint(self, state: dict[str, Any], name: str = "state") -> None:
        """Atomically save state (tensors, numbers, lists, dicts only: loaded weights_only),
        behind a header with the payload's sha256."""
        offset, lines = self._metrics_mark()
        buf = io.BytesIO()
        torch.save({"state": state, "metrics_offset": offset, "metrics_lines": lines}, buf)
        payload = buf.getvalue()
        header = CKPT_MAGIC + checksum(payload).encode() + b"\n"
        write_bytes(self._ckpt_dir / f"{_safe(name)}.pt", header + payload)
        self._last_checkpoint = time.monotonic()

    def load_checkpoint(self, name: str = "state") -> dict[str, Any] | None:
        """The last saved state under `name`, or None (also when it does not validate)."""
        path = self._ckpt_dir / f"{_safe(name)}.pt"
        if not path.exists():
            return None
        doc = _read_checkpoint(path)
        if doc is None:
            warn(f"{path} is damaged; ignoring it")
            path.unlink(missing_ok=True)
            return None
        return doc["state"]

    def close(self) -> None:
        self._metrics.close()

    def cleanup(self) -> None:
        """After a complete run: drop checkpoints and stage files (summary.json has it all)."""
        shutil.rmtree(self._ckpt_dir, ignore_errors=True)
        shutil.rmtree(self._stage_dir, ignore_errors=True)


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in key)


def _count_lines(path: Path, size: int) -> int:
    """Newlines in the first `size` bytes of path; -1 when the prefix does not end a line."""
    if size == 0:
        return 0
    try:
        with open(path, "rb") as f:
            data = f.read(size)
    except OSError:
        return -1
    if len(data) != size or not data.endswith(b"\n"):
        return -1
    return data.count(b"\n")


def _mark_ok(doc: Any) -> bool:
    return (isinstance(doc, dict)
            and all(isinstance(doc.get(k), int) and not isinstance(doc.get(k), bool)
                    and doc[k] >= 0 for k in ("metrics_offset", "metrics_lines")))


def _read_stage(path: Path) -> dict[str, Any] | None:
    """A stage file's document if it parses and its checksum matches, else None."""
    try:
        doc = json.loads(path.read_bytes())
        body = {k: doc[k] for k in ("key", "result", "metrics_offset", "metrics_lines")}
        ok = (_mark_ok(doc) and isinstance(doc["key"], str)
              and doc.get("sha256") == checksum(json.dumps(body, sort_keys=True).encode()))
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None
    return doc if ok else None


def _read_checkpoint(path: Path) -> dict[str, Any] | None:
    """A checkpoint's {"state", "metrics_offset", "metrics_lines"} if its header's sha256
    matches the payload and it loads with weights_only, else None."""
    try:
        data = path.read_bytes()
        head, _, payload = data.partition(b"\n")
        if head != CKPT_MAGIC + checksum(payload).encode():
            return None
        doc = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception:  # any unpickling error means the file is not ours or is torn
        return None
    return doc if _mark_ok(doc) and "state" in doc else None
