"""report/: the scorecard and the claims table from summaries; the HTML page in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gradprobe import plots
from gradprobe.claims import Part, exact, judge, not_applicable, t_interval
from gradprobe.report.build import write_report
from gradprobe.report.claims_table import rows, scorecard


def _summary(name: str, spec: str, claims: list, figures: list[str]) -> dict:
    return {"experiment": name, "spec": spec, "title": f"title of {name}", "source": "a paper",
            "run_id": "abc123", "status": "complete", "elapsed_s": 1.0, "device": "cpu",
            "claims": [c.to_dict() for c in claims], "figures": figures, "results": {},
            "free_choices": {}}


def _summaries(out: Path) -> list[dict]:
    fig, ax = plots.figure()
    ax[0, 0].plot([0, 1], [0, 1])
    plots.save(fig, out / "exp_a" / "abc123" / "curve.png")
    a = [judge("learns", "s", "≥ 0.9", "0.95", "empirical",
               Part("k=1", t_interval([0.95, 0.96, 0.97]), ">=", 0.9), figure="curve.png"),
         judge("flat", "s", "≤ 0.6", "0.5", "empirical",
               Part("k=3", t_interval([0.4, 0.7, 0.65]), "<=", 0.6)),
         judge("bound", "s", "≤ 1", "Thm 1", "bound", Part("d=5", exact(0.99), "<=", 1.0))]
    b = [judge("whitens", "s", "≤ 0.2", "ref", "empirical",
               Part("L=24", t_interval([0.3, 0.31, 0.32]), "<=", 0.2)),
         not_applicable("resnet", "s", "needs β = 0.1 among betas", "ref", "empirical")]
    return [_summary("exp_a", "A1", a, ["curve.png"]),
            _summary("<script>console.error('injected')</script>", "C1", b, [])]


def test_scorecard_counts_per_paper_and_groups(tmp_path):
    ss = _summaries(tmp_path)
    card = scorecard(ss)
    assert card[0].startswith("Failures of Gradient-Based Deep Learning (Shalev-Shwartz")
    assert "2 empirical claims — 1 hold, 1 inconclusive" in card[0]
    assert "1 bounds and identities — 1 hold" in card[0]
    assert "The Shattered Gradients Problem" in card[1]
    assert "1 fail" in card[1] and "1 not applicable" in card[1]
    rs = rows(ss)
    assert [r.kind for r in rs][-1] == "bound"  # bounds and identities after the findings
    assert rs[0].interval.endswith("(n=3)") and rs[-1].interval == "exact (n=1)"


def test_report_page_loads_in_headless_chromium(tmp_path):
    md, page = write_report(_summaries(tmp_path), tmp_path, scale="quick")
    text = page.read_text()
    assert "<script>" not in text  # a summary's fields are escaped
    assert "Scorecard" in md.read_text()
    for src in re.findall(r"<img src='([^']+)'", text):
        assert (tmp_path / src).is_file(), src
    for href in re.findall(r"<a href='#([^']+)'", text):
        assert f"id='{href}'" in text, href  # every claim links to a figure on the page
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless check needs Debian's chromium package (apt-get install chromium)")
    r = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Scorecard" in r.stdout and "badge" in r.stdout
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
