"""RunContext: what an experiment's run() gets — device, seeds, metrics log, progress, resume.

Resume protocol. metrics.jsonl is append-only; every checkpoint and every finished stage records
the byte length, line count and sha256 of metrics.jsonl at that moment. A restarted run truncates
metrics.jsonl to the largest recorded length, so the points logged after the last checkpoint are
logged again, exactly once, by the resumed computation. Stages (`ctx.stage(key, fn)`) memoise
whole sub-computations; checkpoints (`ctx.save_checkpoint`) cover long loops inside a stage and
are cleared when it ends.

Validation. Stage files and checkpoints carry a sha256 of their payload, and the recorded
metrics length, line count and digest must match metrics.jsonl. A damaged stage file or metrics
file cannot be placed in the metrics log, so the run starts over (one warning line); a damaged
checkpoint is dropped with the others and its stage reruns from the last finished stage. While
the run goes on, metrics.jsonl must keep the length this context wrote; if something else
truncates or appends to it, `StoreDamaged` is raised and the store recomputes the run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
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
        self._saves = 0  # checkpoints and stages written by this process (fault injection)
        self._ckpt_dir = self.run_dir / "checkpoints"
        self._stage_dir = self.run_dir / "stages"
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.resumed = False
        self.diverged: list[str] = []  # reasons, from fit() or an experiment (mark_diverged)
        self.stages_done: dict[str, Any] = {}  # key → result, in order: the results so far
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._size, self._lines, self._digest = self._restore_metrics()
        self._metrics = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115

    # ---- seeds -------------------------------------------------------------------------
    def generator(self, *keys: object, device: torch.device | str | None = None) -> torch.Generator:
        """A generator seeded from (run seed, *keys), on the run's device unless told."""
        return generator(self.seed, *keys, device=device if device is not None else self.device)

    # ---- divergence --------------------------------------------------------------------
    # ---- metrics -----------------------------------------------------------------------
    def log(self, series: str, step: int | None = None, **values: Any) -> None:
        """Append one point to metrics.jsonl: {"series": ..., "step": ..., **values}."""
        row = {"series": series, "step": step, **values}
        data = (json.dumps(clean_json(row)) + "\n").encode()
        self._metrics.write(data.decode())
        self._size += len(data)
        self._lines += 1
        self._digest.update(data)

    def _metrics_mark(self) -> dict[str, Any]:
        """{metrics_offset, metrics_lines, metrics_sha256} of metrics.jsonl, after checking
        that its length is what this run wrote."""
        self._metrics.flush()
        size = self.metrics_path.stat().st_size if self.metrics_path.exists() else -1
        if size != self._size:
            raise StoreDamaged(f"{self.metrics_path} is {size} bytes but this run wrote "
                               f"{self._size}: it was changed under the run")
        return {"metrics_offset": self._size, "metrics_lines": self._lines,
                "metrics_sha256": self._digest.hexdigest()}

    def verify_metrics(self) -> None:
        """Raise StoreDamaged unless metrics.jsonl holds exactly the bytes this run wrote."""
        mark = self._metrics_mark()
        if _prefix_mark(self.metrics_path, mark["metrics_offset"]) != mark:
            raise StoreDamaged(f"{self.metrics_path} does not hold the {self._lines} lines "
                               "this run wrote")

    def _restore_metrics(self) -> tuple[int, int, Any]:
        """Validate stages and checkpoints, truncate metrics.jsonl to the last recorded mark;
        returns that (length, lines, running sha256). Damage is reported in one line and
        recomputed."""
        stages, damaged = _read_all(self._stage_dir.glob("*.json"), _read_stage)
        ckpts, bad_ckpt = _read_all(self._ckpt_dir.glob("*.pt"), _read_checkpoint)
        marks = [_mark(d) for d in stages.values()]
        base = max(marks, default=_mark({}), key=lambda m: m["metrics_offset"])
        if not damaged and marks and _prefix_mark(self.metrics_path,
                                                  base["metrics_offset"]) != base:
            damaged.append(self.metrics_path)
        if damaged:
            warn(f"{damaged[0]} is damaged; recomputing {self.run_dir} from the start")
            self._wipe()
            return 0, 0, hashlib.sha256()
        if bad_ckpt:
            warn(f"{bad_ckpt[0]} is damaged; dropping checkpoints, resuming from the last "
                 "finished stage")
            shutil.rmtree(self._ckpt_dir, ignore_errors=True)
            ckpts = {}
        mark = base
        if ckpts:
            last = max((_mark(d) for d in ckpts.values()), key=lambda m: m["metrics_offset"])
            if (last["metrics_offset"] < base["metrics_offset"]
                    or _prefix_mark(self.metrics_path, last["metrics_offset"]) != last):
                warn(f"{self.metrics_path} does not match the checkpoints; dropping them, "
                     "resuming from the last finished stage")
                shutil.rmtree(self._ckpt_dir, ignore_errors=True)
            else:
                mark = last
        self.resumed = bool(stages or (self._ckpt_dir.exists() and ckpts))
        off = mark["metrics_offset"]
        if self.metrics_path.exists():
            with open(self.metrics_path, "r+b") as f:
                f.truncate(off)
        digest = hashlib.sha256(_read_prefix(self.metrics_path, off) or b"")
        return off, mark["metrics_lines"], digest

    def _wipe(self) -> None:
        shutil.rmtree(self._stage_dir, ignore_errors=True)
        shutil.rmtree(self._ckpt_dir, ignore_errors=True)
        self.metrics_path.unlink(missing_ok=True)

    def mark_diverged(self, reason: str) -> None:
        """Record that a computation met NaN/Inf: the run ends with status 'diverged' and
        whatever results it returns (training loops call this instead of raising)."""
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
        doc = _read_stage(path) if path.exists() else None
        if doc is not None and doc["key"] == key:
            self.stages_done[key] = doc["result"]
            return doc["result"]
        result = clean_json(fn(), strict=False)  # NaN kept: the run must still read as diverged
        body = {"key": key, "result": result, **self._metrics_mark()}
        payload = json.dumps(body, sort_keys=True)
        write_bytes(path, json.dumps({**body, "sha256": checksum(payload.encode())}).encode())
        for ckpt in self._ckpt_dir.glob("*.pt"):
            ckpt.unlink()
        self.stages_done[key] = result
        self._saved()
        return result

    def checkpoint_due(self) -> bool:
        """True when checkpoint_every_s seconds have passed since the last save."""
        return time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s

    def save_checkpoint(self, state: dict[str, Any], name: str = "state") -> None:
        """Atomically save state (tensors, numbers, lists, dicts only: loaded weights_only),
        behind a header with the payload's sha256."""
        buf = io.BytesIO()
        torch.save({"state": state, **self._metrics_mark()}, buf)
        payload = buf.getvalue()
        header = CKPT_MAGIC + checksum(payload).encode() + b"\n"
        write_bytes(self._ckpt_dir / f"{_safe(name)}.pt", header + payload)
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


MARK_KEYS = ("metrics_offset", "metrics_lines", "metrics_sha256")


def _mark(doc: dict[str, Any]) -> dict[str, Any]:
    return {"metrics_offset": doc.get("metrics_offset", 0),
            "metrics_lines": doc.get("metrics_lines", 0),
            "metrics_sha256": doc.get("metrics_sha256", hashlib.sha256().hexdigest())}


def _read_prefix(path: Path, size: int) -> bytes | None:
    """The first `size` bytes of path, or None when it is shorter or unreadable."""
    if size == 0:
        return b""
    try:
        with open(path, "rb") as f:
            data = f.read(size)
    except OSError:
        return None
    return data if len(data) == size else None


def _prefix_mark(path: Path, size: int) -> dict[str, Any] | None:
    """The mark (length, lines, sha256) of the first `size` bytes of path; None when the file
    is shorter or that prefix does not end a line."""
    data = _read_prefix(path, size)
    if data is None or (data and not data.endswith(b"\n")):
        return None
    return {"metrics_offset": size, "metrics_lines": data.count(b"\n"),
            "metrics_sha256": hashlib.sha256(data).hexdigest()}


def _mark_ok(doc: Any) -> bool:
    return (isinstance(doc, dict)
            and all(isinstance(doc.get(k), int) and not isinstance(doc.get(k), bool)
                    and doc[k] >= 0 for k in ("metrics_offset", "metrics_lines"))
            and isinstance(doc.get("metrics_sha256"), str))


def _read_all(paths: Iterable[Path], read: Callable[[Path], dict[str, Any] | None]
              ) -> tuple[dict[Path, dict[str, Any]], list[Path]]:
    """({path: document} of the files that validate, [paths that do not])."""
    good, bad = {}, []
    for path in sorted(paths):
        doc = read(path)
        if doc is None:
            bad.append(path)
        else:
            good[path] = doc
    return good, bad


def _read_stage(path: Path) -> dict[str, Any] | None:
    """A stage file's document if it parses and its checksum matches, else None."""
    try:
        doc = json.loads(path.read_bytes())
        body = {k: doc[k] for k in ("key", "result", *MARK_KEYS)}
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
