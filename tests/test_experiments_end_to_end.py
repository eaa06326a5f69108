"""A4's verdicts on synthetic curves: the k = 2 budget rule of SPEC D2 and steps_to_learn."""

from __future__ import annotations

from gradprobe.experiments.end_to_end import Config, claims, steps_to_learn


def _curve(accs: list[float], every: int = 100) -> dict:
    return {"steps": [i * every for i in range(len(accs))], "accuracy": accs}


def test_steps_to_learn_is_the_first_evaluation_at_the_level() -> None:
    assert steps_to_learn(_curve([0.5, 0.5, 0.79, 0.80, 0.95]), 0.80) == 300
    assert steps_to_learn(_curve([0.5, 0.6]), 0.80) is None


def _results(large: list[float], learn: list[int | None], trained: int) -> dict:
    return {"final_accuracy": {"e2e": {"1": [0.97] * 3, "2": [0.94, 0.95, 0.93], "3": large},
                               "dec": {"1": [0.97] * 3, "2": [0.93] * 3, "3": [0.9, 0.91, 0.9]}},
            "steps_to_learn_k2": learn,
            "steps_trained": {"e2e": {"1": 300, "2": 1000, "3": trained},
                              "dec": {"1": 500, "2": 500, "3": 500}}}


def test_large_k_claim_needs_five_times_the_k2_budget() -> None:
    cfg = Config()
    chance = [0.50, 0.51, 0.49]
    by_id = lambda res: {c.id: c for c in claims(res, cfg)}  # noqa: E731
    ok = by_id(_results(chance, [500, 600, 900], 4500))["end_to_end_fails_large_k"]
    assert ok.verdict == "holds" and ok.measured["budget_reaches"]
    short = by_id(_results(chance, [500, 600, 900], 4499))["end_to_end_fails_large_k"]
    assert short.verdict == "inconclusive" and short.measured["steps_needed"][2] == 4500
    unknown = by_id(_results(chance, [500, None, 900], 20000))["end_to_end_fails_large_k"]
    assert unknown.verdict == "inconclusive"  # a seed whose k = 2 never learned: no budget
    learned = by_id(_results([0.90, 0.92, 0.91], [500, 600, 900], 300))
    assert learned["end_to_end_fails_large_k"].verdict == "fails"  # above 0.60 even sooner
    assert learned["end_to_end_small_k"].verdict == "holds"
    assert learned["decomposition_succeeds"].verdict == "holds"


def test_claims_without_k2_are_not_applicable() -> None:
    res = _results([0.5, 0.5, 0.5], [500, 600, 900], 5000)
    for m in ("e2e", "dec"):
        res["final_accuracy"][m].pop("2")
    res["steps_to_learn_k2"] = None
    c = {c.id: c for c in claims(res, Config())}
    assert c["end_to_end_fails_large_k"].verdict == "not_applicable"
    assert "k = 2" in c["end_to_end_fails_large_k"].expected


def test_steps_per_k() -> None:
    cfg = Config(iterations_e2e=(300, 1000, 4000))
    assert [cfg.steps_e2e(k) for k in (1, 2, 3, 4)] == [300, 1000, 4000, 4000]
