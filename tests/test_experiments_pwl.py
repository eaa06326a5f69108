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


def _res(hits, conv, fc) -> dict:
    return {"conv_cond": {"first_hit": hits, "iterations": 50_000, "final_error": [0.1] * 3,
                          "best_error_by_cond_iterations": [1e-3] * 3},
            "conv": {"best_error": conv}, "fc": {"best_error": fc}}


def _t(x: list[float]) -> tuple[float, float]:
    """Mean and 95 % Student t half-width of 3 values, by hand."""
    m = sum(x) / 3
    sd = math.sqrt(sum((v - m) ** 2 for v in x) / 2)
    return m, 4.302652729911275 * sd / math.sqrt(3)  # t quantile 0.975 at 2 degrees of freedom


def test_conditioning_wins_on_t_intervals() -> None:
    cfg = pwl.Config()
    hits, conv, fc = [165, 175, 170], [0.41, 0.42, 0.415], [0.83, 0.82, 0.84]
    c = pwl._conditioning_wins(_res(hits, conv, fc), cfg)
    assert c.kind == "empirical" and c.verdict == "holds" and c.n == 3
    first, stall, ratio = c.parts
    m, half = _t([165.0, 175.0, 170.0])
    assert first["statistic"] == pytest.approx(m) and first["threshold"] == 500.0
    assert first["interval"] == pytest.approx([m - half, m + half])
    m, half = _t([math.log10(v) for v in conv])
    assert stall["interval"] == pytest.approx([m - half, m + half])
    assert stall["threshold"] == pytest.approx(-1.0)
    m, half = _t([math.log10(f / v) for f, v in zip(fc, conv)])
    assert ratio["interval"] == pytest.approx([m - half, m + half])
    # no seed reaches 1e-2: each counted as 50,005 (a lower bound), the claim fails
    never = pwl._conditioning_wins(_res([None, None, None], conv, fc), cfg)
    assert never.verdict == "fails" and never.parts[0]["statistic"] == 50_005
    # one seed far later: the interval straddles 500 → inconclusive
    assert pwl._conditioning_wins(_res([165, 175, 900], conv, fc), cfg).verdict == \
        "inconclusive"
    # conv solves the problem on every seed: fails
    assert pwl._conditioning_wins(_res(hits, [1e-3, 2e-3, 1.5e-3], fc), cfg).verdict == "fails"
    na = pwl._conditioning_wins({"conv": {}, "fc": {}}, cfg)
    assert na.verdict == "not_applicable" and "conv_cond" in na.expected


def test_condition_numbers_scale_is_an_exact_identity() -> None:
    res = {"conditioning": pwl._condition_study(pwl.Config.smoke())}
    c = pwl._condition_numbers_scale(res)
    assert c.kind == "identity" and c.interval is None and c.verdict == "holds"
    assert 3.5 <= c.measured["sigma_ratio_exponent"] <= 4.5
