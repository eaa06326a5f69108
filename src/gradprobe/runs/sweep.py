"""`gradprobe sweep EXPERIMENT KEY=V1,V2,…` (SPEC D1): one run per value, verdicts side by side.

Each value is an ordinary run (cached and resumable like any other); the sweep file
`<out>/<experiment>/sweeps/<KEY>.json` records {"experiment", "key", "values", "verdicts":
{claim_id: [verdict per value]}, "runs": [run_dir per value]}, which the report reads to say
"holds for every value tried" or "depends on KEY: …".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gradprobe.errors import UsageError


def parse_values(spec: str) -> tuple[str, list[Any]]:
    """'KEY=V1,V2,…' → (KEY, [V1, V2, …]); commas inside [...] or {...} do not split, each value
    is JSON when it parses, else a string."""
    if "=" not in spec:
        raise UsageError(f"sweep expects KEY=V1,V2,…, got {spec!r}")
    key, raw = spec.split("=", 1)
    key = key.strip()
    items, depth, cur = [], 0, ""
    for ch in raw:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    values = []
    for item in (i.strip() for i in items):
        if not item:
            raise UsageError(f"sweep {key}: empty value in {raw!r}")
        try:
            values.append(json.loads(item))
        except json.JSONDecodeError:
            values.append(item)
    if not key or len(values) < 1:
        raise UsageError(f"sweep expects KEY=V1,V2,…, got {spec!r}")
    if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
        raise UsageError(f"sweep {key}: repeated values in {raw!r}")
    return key, values


def sweep(name: str, spec: str, scale: str = "quick", seed: int = 0, out: Path | str = "runs",
          device: str = "auto", force: bool = False, workers: int | None = None,
          backend: str = "local", address: str | None = None) -> dict[str, Any]:
    """Run `name` once per value of KEY (every request validated before any work starts)."""
    from gradprobe.runs.atomic import write_json
    from gradprobe.runs.backends import run_all
    from gradprobe.runs.store import resolve

    key, values = parse_values(spec)
    reqs = [resolve(name, scale, seed, {key: v}, out, device) for v in values]
    summaries = run_all(reqs, backend=backend, workers=workers or min(len(reqs), 2),
                        address=address, force=force)
    claim_ids: list[str] = []
    for s in summaries:
        for c in s.get("claims", []):
            if c["id"] not in claim_ids:
                claim_ids.append(c["id"])
    verdicts = {cid: [_verdict(s, cid) for s in summaries] for cid in claim_ids}
    doc = {"experiment": name, "key": key,
           "values": [r.config.to_dict()[key] for r in reqs], "scale": scale, "seed": seed,
           "verdicts": verdicts, "runs": [str(r.run_dir) for r in reqs],
           "status": [s.get("status") for s in summaries]}
    path = Path(out) / name / "sweeps" / f"{key}.json"
    write_json(path, doc)
    doc["path"] = str(path)
    return doc


def _verdict(summary: dict[str, Any], claim_id: str) -> str:
    for c in summary.get("claims", []):
        if c["id"] == claim_id:
            return c.get("verdict", "holds" if c.get("holds") else "fails")
    return "absent" if summary.get("status") != "failed" else "failed"
