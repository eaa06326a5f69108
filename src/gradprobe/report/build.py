"""report.md and report.html: the scorecard, one row per claim, and every figure.

Built from summaries alone (summary.json carries spec, title and source), so the report imports
no experiment. Everything taken from a summary is escaped in the HTML: a run store may come from
someone else.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any

from gradprobe.report.claims_table import Row, fmt_measured, fmt_number, rows, scorecard

__all__ = ["fmt_measured", "fmt_number", "write_report"]

COLUMNS = ("experiment", "claim", "kind", "paper", "ours", "interval (n)", "verdict")
BADGE = {"holds": "#1a7f37", "fails": "#cf222e", "inconclusive": "#9a6700",
         "not_applicable": "#6e7781"}


def _cells(r: Row) -> list[str]:
    ours = r.ours if r.statistic in ("None", "") else f"{r.statistic} vs {r.threshold}: {r.ours}"
    return [r.experiment, r.claim, r.kind, r.paper, ours, r.interval, r.verdict]


def _md_table(rs: list[Row]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " | free choices |",
             "|" + "---|" * (len(COLUMNS) + 1)]
    for r in rs:
        cells = _cells(r)
        cells[1] = f"`{cells[1]}`"
        cells[-1] = f"**{cells[-1]}**" if r.verdict != "holds" else cells[-1]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ")
                                       for c in cells + [r.choices]) + " |")
    return lines


def write_report(summaries: list[dict[str, Any]], out: Path, scale: str) -> tuple[Path, Path]:
    """Write <out>/report.md and <out>/report.html; figures are linked relative to <out>."""
    from gradprobe.runs.atomic import write_bytes

    out = Path(out)
    rs = rows(summaries, out)
    empirical = [r for r in rs if r.kind == "empirical"]
    exact = [r for r in rs if r.kind != "empirical"]
    total_s = sum(float(s.get("elapsed_s", 0) or 0) for s in summaries)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    devices = sorted({str(s.get("device", "?")) for s in summaries})
    n_hold = sum(r.verdict == "holds" for r in rs)
    head = (f"{len(summaries)} experiments at scale `{scale}` on {', '.join(devices)}, {stamp}; "
            f"{n_hold}/{len(rs)} claims hold; compute {total_s:.0f} s (summed over runs; cached "
            "runs report their original time).")
    cards = scorecard(summaries)

    md = ["# gradprobe reproduction report", "", head, "", "## Scorecard", ""]
    md += [f"- {line}" for line in cards]
    md += ["", "Verdicts (SPEC D0): **holds** when the whole 95 % interval lies on the claim's "
           "side of the threshold, **fails** when it lies wholly on the other side, "
           "**inconclusive** when it straddles it, **not_applicable** when the run lacks what "
           "the claim needs.", "", "## Empirical claims", ""]
    md += _md_table(empirical)
    md += ["", "## Bounds and identities", "",
           "These can fail only through a bug or estimation noise; they are kept apart from the "
           "findings above.", ""]
    md += _md_table(exact)
    for s in summaries:
        name = str(s.get("experiment", "?"))
        rel = Path(name) / str(s.get("run_id", "?"))
        md += ["", f"## {name} ({s.get('spec', '')}): {s.get('title', '')}", "",
               f"Source: {s.get('source', '')}. Status: **{s.get('status')}** in "
               f"{float(s.get('elapsed_s', 0) or 0):.1f} s. Run: `{rel}`."]
        if s.get("status") == "failed":
            md.append(f"\nError: `{s.get('error')}` (log: `{s.get('log')}`)")
        if isinstance(s.get("results"), dict) and s["results"].get("dataset"):
            md.append(f"Data: {s['results']['dataset']}.")
        for f in s.get("figures", []):
            md += ["", f"![{name}: {f}]({rel / str(f)})"]
    md_path = out / "report.md"
    write_bytes(md_path, ("\n".join(md) + "\n").encode())

    html_path = out / "report.html"
    write_bytes(html_path, _html(summaries, head, cards, empirical, exact).encode())
    return md_path, html_path


def _html(summaries: list[dict[str, Any]], head: str, cards: list[str], empirical: list[Row],
          exact: list[Row]) -> str:
    e = html.escape
    style = ("body{font-family:system-ui,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;"
             "color:#1f2328}table{border-collapse:collapse;font-size:13px;width:100%}"
             "td,th{border:1px solid #d0d7de;padding:4px 6px;vertical-align:top;text-align:left}"
             "th{background:#f6f8fa}.badge{display:inline-block;padding:1px 8px;border-radius:10px;"
             "color:#fff;font-size:12px;white-space:nowrap}img{max-width:100%;border:1px solid "
             "#eee;margin:4px 0}code{font-size:12px}li{margin:3px 0}")
    h = ["<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>",
         "<title>gradprobe report</title>", f"<style>{style}</style></head><body>",
         "<h1>gradprobe reproduction report</h1>", f"<p>{e(head)}</p>",
         "<h2>Scorecard</h2><ul>" + "".join(f"<li>{e(c)}</li>" for c in cards) + "</ul>"]

    def table(rs: list[Row]) -> str:
        t = ["<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
             + "<th>free choices</th></tr>"]
        for r in rs:
            cells = _cells(r)
            claim = e(cells[1])
            if r.figure:
                claim = f"<a href='#{e(_anchor(r.figure))}'>{claim}</a>"
            badge = (f"<span class='badge' style='background:{BADGE.get(r.verdict, '#6e7781')}'>"
                     f"{e(r.verdict)}</span>")
            t.append("<tr>" + f"<td>{e(cells[0])}</td><td title='{e(r.statement)}'>{claim}</td>"
                     + "".join(f"<td>{e(c)}</td>" for c in cells[2:6])
                     + f"<td>{badge}</td><td>{e(r.choices)}</td></tr>")
        t.append("</table>")
        return "\n".join(t)

    h += ["<h2>Empirical claims</h2>", table(empirical), "<h2>Bounds and identities</h2>",
          "<p>These can fail only through a bug or estimation noise.</p>", table(exact)]
    for s in summaries:
        name = str(s.get("experiment", "?"))
        rel = Path(name) / str(s.get("run_id", "?"))
        h.append(f"<h2 id='{e(name)}'>{e(name)} ({e(str(s.get('spec', '')))}): "
                 f"{e(str(s.get('title', '')))}</h2>")
        h.append(f"<p>Source: {e(str(s.get('source', '')))}. Status: <b>{e(str(s.get('status')))}"
                 f"</b> in {float(s.get('elapsed_s', 0) or 0):.1f} s. Run: "
                 f"<code>{e(str(rel))}</code></p>")
        if s.get("status") == "failed":
            h.append(f"<pre>{e(str(s.get('error')))}</pre>")
        for f in s.get("figures", []):
            path = str(rel / str(f))
            h.append(f"<figure id='{e(_anchor(path))}'><img src='{e(path)}' alt='{e(str(f))}'>"
                     f"<figcaption><code>{e(str(f))}</code></figcaption></figure>")
        h.append("<details><summary>results (JSON)</summary><pre>"
                 + e(json.dumps(s.get("results", {}), indent=1)[:20000]) + "</pre></details>")
    h.append("</body></html>")
    return "\n".join(h)


def _anchor(path: str) -> str:
    return "fig-" + "".join(c if c.isalnum() else "-" for c in path)
