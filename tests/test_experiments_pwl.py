"""experiments.pwl: Fig. 5's panel schedule, the two-phase conv_cond evaluation, the claims."""

from __future__ import annotations

import math

import pytest
import torch

from gradprobe.experiments import pwl
from gradprobe.runs.context import RunContext


def test_every_variant_is_drawn_at_the_captions_iteration_counts() -> None:
    quick, paper = pwl.Config(), pwl.Config.paper()
    assert quick.panels == (500, 10_000, 50_000)  # Fig. 5's caption
    for v in ("fc", "conv", "conv_cond"):
        assert pwl._plan(v, quick).snapshots == (500, 10_000, 50_000)
        assert pwl._plan(v, quick).iterations == 50_000
    assert pwl._plan("autoencoder", quick).snapshots == (500, 10_000)  # 10k its at quick
    assert pwl._plan("autoencoder", paper).snapshots == (500, 10_000, 50_000)


def test_conv_cond_evaluated_densely_to_cond_iterations_then_sparsely(tmp_path) -> None:
    cfg = pwl.Config.smoke()  # cond_iterations 100 every 5, then every 50 to 400
    ctx = RunContext(tmp_path, 0, torch.device("cpu"), quiet=True, checkpoint_every_s=1e9)
    out = pwl._train_linear("conv_cond", cfg, ctx)
    ctx.close()
    assert out["steps"] == list(range(0, 101, 5)) + list(range(150, 401, 50))
    assert set(out["snapshots"]) == {"50", "100", "400"}
    err = torch.tensor(out["error"])
    by = err[: len(range(0, 101, 5))].min(0).values
    assert out["best_error_by_cond_iterations"] == pytest.approx(by.tolist())
    assert out["best_error"] == pytest.approx(err.min(0).values.tolist())


def _res(early, conv, fc) -> dict:
    return {"conv_cond": {"best_error_by_cond_iterations": early, "first_hit": [None] * 3},
            "conv": {"best_error": conv}, "fc": {"best_error": fc}}


def test_conditioning_wins_on_t_intervals_of_log_errors() -> None:
    cfg = pwl.Config()
    early, conv, fc = [2e-3, 4e-3, 3e-3], [0.41, 0.42, 0.415], [0.83, 0.82, 0.84]
    c = pwl._conditioning_wins(_res(early, conv, fc), cfg)
    assert c.kind == "empirical" and c.verdict == "holds" and c.n == 3
    parts = {p["name"].split(" ")[1]: p for p in c.parts}
    x = [math.log10(e) for e in early]  # brute force: Student t by hand
    m = sum(x) / 3
    sd = math.sqrt(sum((v - m) ** 2 for v in x) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t quantile 0.975 at 2 degrees of freedom
    assert parts["conv_cond"]["statistic"] == pytest.approx(m)
    assert parts["conv_cond"]["interval"] == pytest.approx([m - half, m + half])
    assert parts["conv_cond"]["threshold"] == pytest.approx(-2.0)
    # one seed of conv_cond far above the target: the interval straddles -2 → inconclusive
    assert pwl._conditioning_wins(_res([2e-3, 4e-3, 0.5], conv, fc), cfg).verdict == \
        "inconclusive"
    # conv solves the problem on every seed: fails
    assert pwl._conditioning_wins(_res(early, [1e-3, 2e-3, 1.5e-3], fc), cfg).verdict == "fails"
    na = pwl._conditioning_wins({"conv": {}, "fc": {}}, cfg)
    assert na.verdict == "not_applicable" and "conv_cond" in na.expected


def test_condition_numbers_scale_is_an_exact_identity() -> None:
    res = {"conditioning": pwl._condition_study(pwl.Config.smoke())}
    c = pwl._condition_numbers_scale(res)
    assert c.kind == "identity" and c.interval is None and c.verdict == "holds"
    assert 3.5 <= c.measured["sigma_ratio_exponent"] <= 4.5
