"""Claims and verdicts: SPEC D0, the one place where intervals and verdicts are computed.

An experiment measures replicates (seeds, initialisations, nets) and turns each quantity it judges
into an `Estimate` (a value with a 95 % interval over n replicates, or exact). A `Part` compares
one estimate with a threshold; `judge` turns parts into a `Claim` with a three-valued verdict:

- `holds`        the whole interval lies on the claim's side of the threshold;
- `fails`        the whole interval lies on the other side;
- `inconclusive` the interval straddles the threshold (or the estimate is not finite);
- `not_applicable` the run lacks what the claim needs (see `not_applicable`).

A multi-part claim ("for every k") holds when every part holds, fails when any part fails, and is
inconclusive otherwise; its `statistic`, `interval` and `threshold` are those of the deciding part
(the first failing part, else the inconclusive part or the holding part nearest its threshold).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["empirical", "bound", "identity"]
Verdict = Literal["holds", "fails", "inconclusive", "not_applicable"]
Op = Literal["<=", "<", ">=", ">", "in"]
KINDS: tuple[str, ...] = ("empirical", "bound", "identity")
VERDICTS: tuple[str, ...] = ("holds", "fails", "inconclusive", "not_applicable")
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A measured number with its 95 % interval.

    `lo`/`hi` bound `value`; `method` names how (None: exact, then lo == hi == value);
    `n` is the number of independent replicates behind it.
    """

    value: float
    lo: float
    hi: float
    method: str | None
    n: int

    @property
    def interval(self) -> list[float] | None:
        return None if self.method is None else [self.lo, self.hi]

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.value, self.lo, self.hi))


def exact(value: float, n: int = 1) -> Estimate:
    """An enumerated or deterministic statistic: no interval."""
    v = _float(value)
    return Estimate(v, v, v, None, int(n))


def se_interval(value: float, se: float, n: int, z: float = 1.959964) -> Estimate:
    """value ± z·se, from an estimator's own standard error (normal approximation)."""
    v, s = _float(value), abs(_float(se))
    return Estimate(v, v - z * s, v + z * s, "standard error (±1.96 se)", int(n))


def t_interval(samples: Sequence[float], level: float = LEVEL) -> Estimate:
    """Student t interval for the mean of independent replicates (n ≥ 2; n = 1 is unbounded)."""
    x = np.asarray([_float(s) for s in samples], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, "student t", 0)
    mean = float(x.mean())
    if n == 1 or not np.all(np.isfinite(x)):
        return Estimate(mean, -math.inf if n == 1 else math.nan,
                        math.inf if n == 1 else math.nan, "student t", n)
    half = _t_quantile(0.5 + level / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, f"student t over {n} replicates", n)


def bootstrap_interval(
    samples: Sequence[Any],
    stat: Callable[[np.ndarray], float] = np.mean,
    resamples: int = 4000,
    seed: int = 0,
    level: float = LEVEL,
) -> Estimate:
    """Percentile bootstrap interval of stat(samples), resampling replicates (rows) with
    replacement. Seeded, so the same samples give the same interval. `samples` may be rows
    (e.g. (n, 2) pairs for a rank correlation); `stat` receives an array of rows."""
    x = np.asarray(samples, dtype=np.float64)
    n = int(x.shape[0]) if x.ndim else 0
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, "bootstrap", 0)
    value = float(stat(x))
    if n == 1 or not np.all(np.isfinite(x)):
        return Estimate(value, math.nan, math.nan, "bootstrap", n)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    reps = np.array([stat(x[i]) for i in idx], dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return Estimate(value, math.nan, math.nan, "bootstrap", n)
    lo, hi = (float(q) for q in np.quantile(reps, [(1 - level) / 2, (1 + level) / 2]))
    method = f"percentile bootstrap over {n} replicates ({resamples} resamples)"
    if not lo <= value <= hi:
        # For a max- or rank-type statistic the resampled values are biased (resampling fewer
        # distinct replicates inflates a maximum), and the percentile interval can miss the
        # estimate itself. Widen it to contain the estimate: never narrower, so never kinder.
        lo, hi = min(lo, value), max(hi, value)
        method += ", widened to contain the estimate"
    return Estimate(value, lo, hi, method, n)


@dataclass(frozen=True)
class Part:
    """One comparison: `estimate` op `threshold` (op "in": threshold is [lo, hi])."""

    name: str
    estimate: Estimate
    op: Op
    threshold: float | tuple[float, float]

    def verdict(self) -> Verdict:
        e = self.estimate
        if not e.finite:
            return "inconclusive"
        lo, hi = e.lo, e.hi
        if self.op == "in":
            a, b = self.threshold  # type: ignore[misc]
            if a <= lo and hi <= b:
                return "holds"
            if hi < a or lo > b:
                return "fails"
            return "inconclusive"
        t = float(self.threshold)  # type: ignore[arg-type]
        inside, outside = {
            "<=": (hi <= t, lo > t), "<": (hi < t, lo >= t),
            ">=": (lo >= t, hi < t), ">": (lo > t, hi <= t),
        }[self.op]
        return "holds" if inside else "fails" if outside else "inconclusive"

    def margin(self) -> float:
        """How far inside its threshold the interval lies, relative to the threshold's size
        (negative when outside); used to pick the deciding part."""
        e = self.estimate
        if not e.finite:
            return -math.inf
        if self.op == "in":
            a, b = self.threshold  # type: ignore[misc]
            m = min(e.lo - a, b - e.hi)
            scale = max(abs(b - a), 1e-300)
        else:
            t = float(self.threshold)  # type: ignore[arg-type]
            m = (t - e.hi) if self.op in ("<=", "<") else (e.lo - t)
            scale = max(abs(t), 1e-300)
        return m / scale

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "statistic": self.estimate.value,
                "threshold": _threshold(self.threshold), "op": self.op,
                "interval": self.estimate.interval, "interval_method": self.estimate.method,
                "n": self.estimate.n, "verdict": self.verdict()}


@dataclass(frozen=True)
class Claim:
    """One checked claim, as written into summary.json (SPEC D0).

    `verdict` is computed by `judge` from measured estimates; never written in by hand.
    `measured` holds the numbers shown beside the paper's (per part, plus any context).
    """

    id: str
    statement: str
    expected: str
    measured: Any
    paper: str
    kind: Kind
    verdict: Verdict
    statistic: float | None = None
    threshold: float | list[float] | None = None
    interval: list[float] | None = None
    interval_method: str | None = None
    n: int | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)
    figure: str | None = None  # the figure file (in the run directory) that draws this claim

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["holds"] = self.holds
        return d


def judge(
    id: str,
    statement: str,
    expected: str,
    paper: str,
    kind: Kind,
    parts: Part | Sequence[Part],
    measured: Any = None,
    figure: str | None = None,
) -> Claim:
    """The claim's verdict from its parts (see the module docstring for the rule)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    parts = [parts] if isinstance(parts, Part) else list(parts)
    if not parts:
        raise ValueError(f"claim {id!r}: no parts to judge (use not_applicable)")
    verdicts = [p.verdict() for p in parts]
    if "fails" in verdicts:
        verdict: Verdict = "fails"
        pool = [p for p, v in zip(parts, verdicts) if v == "fails"]
    elif "inconclusive" in verdicts:
        verdict = "inconclusive"
        pool = [p for p, v in zip(parts, verdicts) if v == "inconclusive"]
    else:
        verdict = "holds"
        pool = parts
    decider = min(pool, key=lambda p: p.margin())
    if measured is None:
        measured = {p.name: p.estimate.value for p in parts}
    e = decider.estimate
    return Claim(
        id=id, statement=statement, expected=expected, measured=measured, paper=paper,
        kind=kind, verdict=verdict, statistic=e.value, threshold=_threshold(decider.threshold),
        interval=e.interval, interval_method=e.method, n=e.n,
        parts=[p.to_dict() for p in parts] if len(parts) > 1 else [], figure=figure,
    )


def not_applicable(id: str, statement: str, expected: str, paper: str, kind: Kind,
                   measured: Any = None, figure: str | None = None) -> Claim:
    """A claim the run cannot judge: its sweep lacks what the claim needs (say what in
    `expected`, e.g. "needs β = 0.1 among betas")."""
    return Claim(id=id, statement=statement, expected=expected, measured=measured or {},
                 paper=paper, kind=kind, verdict="not_applicable", figure=figure)


def finite(*values: float) -> bool:
    """True when every value is a finite number (a NaN measurement never makes a claim hold)."""
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _threshold(t: float | tuple[float, float]) -> float | list[float]:
    return [float(t[0]), float(t[1])] if isinstance(t, tuple | list) else float(t)


def _t_quantile(p: float, dof: int) -> float:
    """Quantile of Student's t (scipy when present, else a Cornish–Fisher expansion accurate to
    ~1e-3 for dof ≥ 2 and exact tables for dof 1–2)."""
    try:
        from scipy.stats import t as student_t

        return float(student_t.ppf(p, dof))
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        from statistics import NormalDist

        if dof == 1:
            return math.tan(math.pi * (p - 0.5))
        if dof == 2:
            a = 4 * p * (1 - p)
            return (2 * p - 1) * math.sqrt(2 / a)
        z = NormalDist().inv_cdf(p)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        return z + g1 / dof + g2 / dof**2 + g3 / dof**3

