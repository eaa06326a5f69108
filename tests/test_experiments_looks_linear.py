"""The image experiments end to end (SPEC C4 `convnet_shattering`, C5 `looks_linear`): smoke runs,
the plateau schedule, and resuming a training run from its checkpoint."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from gradprobe.experiments import looks_linear as ll
from gradprobe.runs.context import RunContext
from gradprobe.runs.store import execute, resolve


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Each experiment's smoke run, once per module: name → (summary, out dir)."""
    cache: dict[str, tuple[dict, object]] = {}

    def get(name: str):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = (execute(resolve(name, "smoke", out=out, device="cpu"), quiet=True), out)
        return cache[name]

    return get


@pytest.mark.parametrize("name, figures", [
    ("looks_linear", {"fig6_accuracy_vs_depth.png", "linearity_at_init.png"}),
    ("convnet_shattering", {"fig5_covariance.png", "fig5_rank_and_norm.png"}),
])
def test_smoke_run(name, figures, smoke):
    s, tmp_path = smoke(name)
    assert s["status"] == "complete", s.get("error")
    assert s["results"]["dataset"].startswith("digits 16×16×1")
    assert s["claims"] and all(isinstance(c["holds"], bool) for c in s["claims"])
    assert figures <= set(s["figures"])
    run_dir = tmp_path / name / s["run_id"]
    assert all((run_dir / f).stat().st_size > 1000 for f in figures)


def test_smoke_claims_are_computed_from_measurements(smoke):
    s, _ = smoke("looks_linear")
    assert s["results"]["params"]["crelu_ll"]["10"] > 0
    claims = {c["id"]: c for c in s["claims"]}
    lin = claims["ll_is_linear_at_init"]
    assert lin["holds"] and lin["measured"]["crelu_ll/10"] <= 1e-5
    assert lin["measured"]["relu/10 (He, contrast)"] > 0.1
    # no ResNet in the smoke zoo: its accuracy is NaN, and a NaN never makes a claim hold
    assert claims["ll_matches_resnet_deep"]["holds"] is False
    res = copy.deepcopy(s["results"])
    res["accuracy_mean"]["relu"]["10"] = res["accuracy_mean"]["crelu_ll"]["10"] - 0.2
    cfg = ll.Config.smoke()
    assert {c.id: c.holds for c in ll.claims(res, cfg)}["plain_relu_degrades"] is True
    res["accuracy_mean"]["relu"]["10"] = float("nan")
    assert {c.id: c.holds for c in ll.claims(res, cfg)}["plain_relu_degrades"] is False


def test_plateau_schedule_drops_only_on_a_plateau():
    cfg = dataclasses.replace(ll.Config(), plateau_window=2, plateau_patience=2,
                              plateau_threshold=0.05, plateau_factor=0.1)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0)
    sched = ll.Plateau(cfg)
    for loss in (2.0, 1.5, 1.1, 0.8, 0.6):  # falling fast: no drop
        sched.step(loss, opt)
    assert opt.param_groups[0]["lr"] == 1.0 and sched.drops == 0
    for loss in (0.6, 0.6, 0.6):  # flat: a drop after `patience` slow measurements
        sched.step(loss, opt)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1) and sched.drops == 1
    state = sched.state()
    other = ll.Plateau(cfg)
    other.load(state)
    assert other.state() == state


def test_training_resumes_from_its_checkpoint_to_the_same_result(tmp_path):
    """A run killed after epoch 1 and resumed from the checkpoint ends exactly where an
    uninterrupted run ends (model, optimiser, schedule and generator states are all saved)."""
    cfg = dataclasses.replace(ll.Config.smoke(), epochs=2)
    ctx = RunContext(tmp_path / "run", seed=3, device=torch.device("cpu"), quiet=True,
                     checkpoint_every_s=0.0)
    data = ll.load_data(cfg, ctx)
    full = ll.train_one(cfg, ctx, data, "crelu_ll", 10, 0)
    assert ctx.load_checkpoint("train_crelu_ll_10_0")["epoch"] == 1  # saved after epoch 1
    resumed = ll.train_one(cfg, ctx, data, "crelu_ll", 10, 0)  # starts at epoch 2
    ctx.close()
    assert resumed["test_acc"] == full["test_acc"]
    assert resumed["curves"] == full["curves"]
