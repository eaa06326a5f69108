"""A claim: a paper's statement turned into a verdict computed from measured numbers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Claim:
    """One checked claim.

    `measured` holds the numbers that were judged, keyed by the swept value (e.g. {"5": 1.0}).
    `holds` must be computed from `measured` by the experiment's `claims()`; never written in.
    `paper` is the paper's own number or statement, shown beside ours in the report.
    """

    id: str
    statement: str
    expected: str
    measured: Any
    holds: bool
    paper: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["holds"] = bool(self.holds)
        return d


def finite(*values: float) -> bool:
    """True when every value is a finite number (a NaN measurement never makes a claim hold)."""
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False
