"""The claims table and the scorecard, computed from summaries alone (no experiment imports).

One row per claim: experiment, claim, kind, paper, ours, interval (n), verdict. Empirical claims
come first; bounds and identities form their own group (they can fail only through a bug or
estimation noise). The scorecard counts verdicts per paper, named in full.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# SPEC part (the letter of the experiment's SPEC id) → the text it reproduces, named in full.
PAPERS = {
    "A": "Failures of Gradient-Based Deep Learning (Shalev-Shwartz, Shamir & Shammah, ICML 2017)",
    "B": "Why are deep neural networks hard to train? (Nielsen, Neural Networks and Deep "
         "Learning, ch. 5)",
    "C": "The Shattered Gradients Problem (Balduzzi et al., ICML 2017)",
    "E": "Beyond the papers: remedies and signal propagation (Bachlechner et al. 2020; De & Smith "
         "2020; Zhang et al. 2019; Brock et al. 2021; Xiao et al. 2018; Poole et al. 2016; "
         "Schoenholz et al. 2017)",
}
VERDICT_ORDER = ("holds", "inconclusive", "fails", "not_applicable")


def fmt_number(x: Any) -> str:
    """Three significant digits; scientific notation outside [1e-3, 1e4)."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        if x == 0 or 1e-3 <= abs(x) < 1e4:
            return f"{x:.3g}"
        return f"{x:.2e}"
    return str(x)


def fmt_measured(m: Any, limit: int = 200) -> str:
    """A compact one-line rendering of a claim's measured values."""
    if isinstance(m, dict):
        text = ", ".join(f"{k}: {fmt_measured(v, limit)}" for k, v in m.items())
    elif isinstance(m, list):
        text = "[" + ", ".join(fmt_measured(v, limit) for v in m) + "]"
    else:
        text = fmt_number(m)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_interval(c: dict[str, Any]) -> str:
    """'[lo, hi] (n=3)', 'exact (n=…)' for an exact statistic, '—' when nothing was judged."""
    if c.get("verdict") == "not_applicable" or c.get("statistic") is None:
        return "—"
    n = c.get("n")
    tail = f" (n={n})" if n is not None else ""
    iv = c.get("interval")
    if iv is None:
        return f"exact{tail}"
    return f"[{fmt_number(iv[0])}, {fmt_number(iv[1])}]{tail}"


def fmt_threshold(c: dict[str, Any]) -> str:
    t = c.get("threshold")
    if isinstance(t, list):
        return f"[{fmt_number(t[0])}, {fmt_number(t[1])}]"
    return fmt_number(t) if t is not None else ""


def verdict_of(c: dict[str, Any]) -> str:
    """The claim's verdict; 0.1 summaries (no verdict key) map holds → holds/fails."""
    v = c.get("verdict")
    if v in VERDICT_ORDER:
        return v
    return "holds" if c.get("holds") else "fails"


@dataclass(frozen=True)
class Row:
    """One claim of one experiment, formatted for the tables."""

    experiment: str
    spec: str
    claim: str
    kind: str
    statement: str
    expected: str
    paper: str
    ours: str
    statistic: str
    threshold: str
    interval: str
    verdict: str
    choices: str  # "holds for every value tried" / "depends on KEY: …" / "" (no free choice)
    figure: str | None  # the figure file this claim is drawn in (relative to the report)


def rows(summaries: list[dict[str, Any]], out: Path | None = None) -> list[Row]:
    """Every claim of every summary, empirical first, then bounds and identities."""
    found = []
    for s in summaries:
        rel = Path(str(s.get("experiment", "?"))) / str(s.get("run_id", "?"))
        figures = [str(f) for f in s.get("figures", [])]
        sweeps = _sweeps(out, s) if out is not None else {}
        for c in s.get("claims", []):
            fig = c.get("figure") or (figures[0] if figures else None)
            found.append(Row(
                experiment=str(s.get("experiment", "?")), spec=str(s.get("spec", "")),
                claim=str(c.get("id", "?")), kind=str(c.get("kind", "empirical")),
                statement=str(c.get("statement", "")), expected=str(c.get("expected", "")),
                paper=str(c.get("paper", "")), ours=fmt_measured(c.get("measured")),
                statistic=fmt_number(c.get("statistic")), threshold=fmt_threshold(c),
                interval=fmt_interval(c), verdict=verdict_of(c),
                choices=_choices_text(str(c.get("id")), s, sweeps),
                figure=str(rel / fig) if fig else None))
    group = {"empirical": 0, "bound": 1, "identity": 1}
    return sorted(found, key=lambda r: group.get(r.kind, 0))


def scorecard(summaries: list[dict[str, Any]]) -> list[str]:
    """One line per paper: '<paper>: N empirical claims — a hold, b inconclusive, c fail; …'."""
    by_paper: dict[str, dict[str, Counter]] = {}
    for s in summaries:
        part = str(s.get("spec", "?"))[:1] or "?"
        for c in s.get("claims", []):
            kind = "empirical" if c.get("kind", "empirical") == "empirical" else "bound/identity"
            by_paper.setdefault(part, {}).setdefault(kind, Counter())[verdict_of(c)] += 1
    lines = []
    for part in sorted(by_paper):
        name = PAPERS.get(part, f"SPEC part {part}")
        bits = []
        for kind in ("empirical", "bound/identity"):
            cnt = by_paper[part].get(kind)
            if not cnt:
                continue
            total = sum(cnt.values())
            words = {"holds": "hold", "inconclusive": "inconclusive", "fails": "fail",
                     "not_applicable": "not applicable"}
            detail = ", ".join(f"{cnt[v]} {words[v]}" for v in VERDICT_ORDER if cnt[v])
            label = "empirical claims" if kind == "empirical" else "bounds and identities"
            bits.append(f"{total} {label} — {detail}")
        lines.append(f"{name}: " + "; ".join(bits))
    return lines


def _sweeps(out: Path, s: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The sweep files written by `gradprobe sweep` for this experiment, by key."""
    found = {}
    d = Path(out) / str(s.get("experiment", "?")) / "sweeps"
    for key in (s.get("free_choices") or {}):
        p = d / f"{key}.json"
        try:
            found[key] = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
    return found


def _choices_text(claim_id: str, s: dict[str, Any], sweeps: dict[str, dict[str, Any]]) -> str:
    """What the claim's verdict does across the experiment's free choices (SPEC D1)."""
    choices = s.get("free_choices") or {}
    if not choices:
        return ""
    parts = []
    for key in choices:
        sw = sweeps.get(key)
        if sw is None:
            parts.append(f"{key}: not swept")
            continue
        verdicts = sw.get("verdicts", {}).get(claim_id)
        if not verdicts:
            continue
        if all(v == "holds" for v in verdicts):
            parts.append(f"holds for every {key} tried ({', '.join(map(str, sw['values']))})")
        else:
            pairs = ", ".join(f"{v} at {val}" for val, v in zip(sw["values"], verdicts))
            parts.append(f"depends on {key}: {pairs}")
    return "; ".join(parts)
