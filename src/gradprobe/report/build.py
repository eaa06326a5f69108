"""report.md and report.html: every figure and one table of every claim (paper vs measured)."""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any

from gradprobe.runs.atomic import write_bytes


def fmt_number(x: Any) -> str:
    """Three significant digits; scientific notation outside [1e-3, 1e4)."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
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


def _rows(summaries: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for s in summaries:
        for c in s.get("claims", []):
            rows.append({
                "experiment": s["experiment"], "claim": c["id"], "paper": c.get("paper", ""),
                "expected": c["expected"], "measured": fmt_measured(c["measured"]),
                "holds": "yes" if c["holds"] else "NO",
            })
    return rows


def write_report(summaries: list[dict[str, Any]], out: Path, scale: str) -> tuple[Path, Path]:
    """Write <out>/report.md and <out>/report.html; figures are linked relative to <out>."""
    from gradprobe.experiments.registry import experiments

    out = Path(out)
    exps = experiments()
    rows = _rows(summaries)
    n_hold = sum(r["holds"] == "yes" for r in rows)
    total_s = sum(s.get("elapsed_s", 0) for s in summaries)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    devices = sorted({s.get("device", "?") for s in summaries})
    head = (f"{len(summaries)} experiments at scale `{scale}` on {', '.join(devices)}, "
            f"{stamp}; {n_hold}/{len(rows)} claims hold; compute {total_s:.0f} s "
            "(summed over runs; cached runs report their original time).")

    md = ["# gradprobe reproduction report", "", head, "", "## Claims", "",
          "| experiment | claim | paper | expected | measured | holds |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| " + " | ".join(r[k].replace("|", "\\|") for k in
                                     ("experiment", "claim", "paper", "expected", "measured",
                                      "holds")) + " |")
    body = []
    for s in summaries:
        exp = exps.get(s["experiment"])
        rel = Path(s["experiment"]) / s["run_id"]
        md += ["", f"## {s['experiment']} ({exp.spec if exp else ''}): "
                   f"{exp.title if exp else ''}", "",
               f"Source: {exp.source if exp else ''}. Status: **{s['status']}** in "
               f"{s.get('elapsed_s', 0):.1f} s. Run: `{rel}`."]
        if s.get("status") == "failed":
            md.append(f"\nError: `{s.get('error')}` (log: `{s.get('log')}`)")
        if s.get("results", {}).get("dataset"):
            md.append(f"Data: {s['results']['dataset']}.")
        for f in s.get("figures", []):
            md += ["", f"![{s['experiment']}: {f}]({rel / f})"]
        body.append((s, exp, rel))
    md_path = out / "report.md"
    write_bytes(md_path, ("\n".join(md) + "\n").encode())

    h = ["<!doctype html><meta charset='utf-8'><title>gradprobe report</title>",
         "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
         "padding:3px 6px;vertical-align:top}.yes{color:#080}.NO{color:#c00;font-weight:bold}"
         "img{max-width:100%;border:1px solid #eee;margin:4px 0}</style>",
         "<h1>gradprobe reproduction report</h1>", f"<p>{html.escape(head)}</p>",
         "<h2>Claims</h2><table><tr>" + "".join(
             f"<th>{c}</th>" for c in ("experiment", "claim", "paper", "expected", "measured",
                                       "holds")) + "</tr>"]
    for r in rows:
        h.append("<tr>" + "".join(f"<td>{html.escape(r[k])}</td>" for k in
                                  ("experiment", "claim", "paper", "expected", "measured"))
                 + f"<td class='{html.escape(r['holds'])}'>{html.escape(r['holds'])}</td></tr>")
    h.append("</table>")
    for s, exp, rel in body:
        h.append(f"<h2 id='{html.escape(str(s['experiment']))}'>"
                 f"{html.escape(str(s['experiment']))} "
                 f"({html.escape(exp.spec if exp else '')}): "
                 f"{html.escape(exp.title if exp else '')}</h2>")
        h.append(f"<p>Source: {html.escape(exp.source if exp else '')}. Status: "
                 f"<b>{html.escape(str(s['status']))}</b> in {s.get('elapsed_s', 0):.1f} s. "
                 f"Run: <code>{html.escape(str(rel))}</code></p>")
        if s.get("status") == "failed":
            h.append(f"<pre>{html.escape(str(s.get('error')))}</pre>")
        for f in s.get("figures", []):
            h.append(f"<img src='{html.escape(str(rel / f))}' alt='{html.escape(f)}'>")
        h.append("<details><summary>results (JSON)</summary><pre>"
                 + html.escape(json.dumps(s.get("results", {}), indent=1)[:20000])
                 + "</pre></details>")
    html_path = out / "report.html"
    write_bytes(html_path, "\n".join(h).encode())
    return md_path, html_path
