"""What an experiment module provides: one SPEC entry, wired as config → run → claims → plot.

Each module in `gradprobe.experiments` defines `EXPERIMENT = Experiment(...)`; the registry finds
it. An experiment knows nothing of the CLI: it receives a RunContext and returns plain results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradprobe.claims import Claim
from gradprobe.config import ExperimentConfig

Results = dict[str, Any]  # JSON-able numbers, lists and dicts, named in SPEC terms


@dataclass(frozen=True)
class Experiment:
    """One reproducible figure.

    run(cfg, ctx) -> Results          does all the compute (may checkpoint through ctx)
    claims(results, cfg) -> [Claim]   verdicts computed from the results
    plot(results, cfg, out_dir) -> [Path]   draws figures from results; never trains
    preflight(cfg)                    optional: raise UsageError/DataError before writing
    """

    name: str
    spec: str  # SPEC section, e.g. "A1"
    title: str  # one line for `gradprobe list`
    source: str  # paper, section, figure
    config: type[ExperimentConfig]
    run: Callable[..., Results]
    claims: Callable[[Results, Any], list[Claim]]
    plot: Callable[[Results, Any, Path], list[Path]]
    preflight: Callable[[Any], None] | None = None
