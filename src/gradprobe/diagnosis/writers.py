"""Where a GradientMonitor writes: JSONL, CSV, TensorBoard, Weights & Biases, or any callable.

`sinks(spec)` checks every writer of a spec before opening any file, so a bad entry in a list
leaves nothing created or open.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor


class JSONLSink:
    """One JSON object per probed step: {"step": s, "probe/layer": value, ...} (the first record
    also carries "notes": what is not measured and why)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = path.open("a", encoding="utf-8")

    def write(self, step: int, scalars: dict[str, float], hists: dict[str, Tensor],
              info: dict[str, Any]) -> None:
        self.f.write(json.dumps({"step": step, **scalars, **info}) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


class CSVSink:
    """Long format, one row per value: step,tag,value (stable columns whatever the model)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        self.f = path.open("a", encoding="utf-8", newline="")
        self.w = csv.writer(self.f)
        if new:
            self.w.writerow(["step", "tag", "value"])

    def write(self, step: int, scalars: dict[str, float], hists: dict[str, Tensor],
              info: dict[str, Any]) -> None:
        self.w.writerows([step, k, v] for k, v in scalars.items())

    def close(self) -> None:
        self.f.close()


class TBSink:
    """A torch.utils.tensorboard SummaryWriter (or anything with add_scalar/add_histogram)."""

    def __init__(self, writer: Any) -> None:
        self.w = writer

    def write(self, step: int, scalars: dict[str, float], hists: dict[str, Tensor],
              info: dict[str, Any]) -> None:
        for k, v in scalars.items():
            self.w.add_scalar(k, v, step)
        for k, h in hists.items():
            self.w.add_histogram(k, h, step)
        if info and hasattr(self.w, "add_text"):
            self.w.add_text("gradprobe/info", json.dumps(info), step)

    def close(self) -> None:
        self.w.flush()


class WandbSink:
    """A wandb run (`wandb.init(...)`, offline mode works): run.log({tag: value}, step=step)."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def write(self, step: int, scalars: dict[str, float], hists: dict[str, Tensor],
              info: dict[str, Any]) -> None:
        self.run.log(dict(scalars), step=step)

    def close(self) -> None:
        pass


class CallableSink:
    """fn(step, scalars) for each probed step (e.g. a Lightning or HF logger's log method)."""

    def __init__(self, fn: Callable[[int, dict[str, float]], Any]) -> None:
        self.fn = fn

    def write(self, step: int, scalars: dict[str, float], hists: dict[str, Tensor],
              info: dict[str, Any]) -> None:
        self.fn(step, dict(scalars))

    def close(self) -> None:
        pass


def _kind(w: Any) -> Callable[[], Any]:
    """A constructor for writer w, or a TypeError / ValueError naming what is accepted."""
    if isinstance(w, str | Path):
        p = Path(w)
        if p.suffix == ".jsonl":
            return lambda: JSONLSink(p)
        if p.suffix == ".csv":
            return lambda: CSVSink(p)
        raise ValueError(f"writer path must end in .jsonl or .csv, got {str(p)!r}")
    if hasattr(w, "add_scalar"):
        return lambda: TBSink(w)
    if hasattr(w, "write") and hasattr(w, "close") and not hasattr(w, "read"):
        return lambda: w  # already a sink (e.g. integrations.wandb_writer.WandbWriter)
    if hasattr(w, "log") and hasattr(w, "finish"):  # a wandb Run
        return lambda: WandbSink(w)
    if callable(w):
        return lambda: CallableSink(w)
    raise TypeError("writer must be a SummaryWriter, a wandb run, a .jsonl/.csv path, a "
                    f"callable(step, scalars) or a list of these; got {w!r}")


def sinks(spec: Any) -> list[Any]:
    """The sinks of a writer spec (one writer, a list of them, or None): all checked first."""
    writers = spec if isinstance(spec, list | tuple) else [spec]
    makers = [_kind(w) for w in writers if w is not None]
    out: list[Any] = []
    try:
        for make in makers:
            out.append(make())
    except BaseException:
        for s in out:
            s.close()
        raise
    return out
