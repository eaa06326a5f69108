"""Closed-form per-layer gradient moments against brute-force per-sample gradients, and
GradientMonitor logging the promised values on the promised steps (read back from TensorBoard)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import gradprobe as gp
from gradprobe.probes import variance as var_mod
from gradprobe.probes.variance import gradient_moments, gradient_variance

F = nn.functional


class Tokens(nn.Module):
    """Linear layers applied per token: (n, T, d) inputs, loss of the token-summed output."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x))).sum(1)


def problems():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    conv = nn.Sequential(
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(6, 3, 3, padding="same", dilation=2), nn.Flatten(), nn.Linear(3 * 16, 3))
    # in-place ReLU: the tensor hook on Linear's output must still get ∂L/∂(that output)
    yield "mlp", nn.Sequential(nn.Linear(7, 5), nn.ReLU(inplace=True), nn.Linear(5, 3)), \
        torch.randn(9, 7, generator=g)
    yield "conv2d", conv, torch.randn(9, 4, 8, 8, generator=g)
    conv1 = nn.Sequential(nn.Conv1d(2, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(24, 3))
    yield "conv1d", conv1, torch.randn(9, 2, 11, generator=g)
    yield "tokens", Tokens(), torch.randn(9, 4, 6, generator=g)


def brute_force(model, x, y):
    """Per-sample gradients by vmap(grad) of each sample's loss: name → (n, *shape)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])
    return vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)


@pytest.mark.parametrize("name,model,x", list(problems()), ids=lambda v: v if isinstance(
    v, str) else "")
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_closed_form_moments_match_per_sample_gradients(name, model, x, reduction):
    y = torch.randint(0, 3, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    ps = brute_force(model, x, y)

    def loss(o, t):
        return F.cross_entropy(o, t, reduction=reduction)
    for elementwise in (False, True):
        res = gradient_moments(model, loss, (x, y), reduction, elementwise=elementwise)
        assert {f"{k}.{p}" for k, d in res.items() for p in d} == set(ps)
        for layer, d in res.items():
            for pname, mo in d.items():
                G = ps[f"{layer}.{pname}"]
                torch.testing.assert_close(mo.mean, G.mean(0), rtol=1e-4, atol=1e-7)
                torch.testing.assert_close(mo.variance, G.var(0).sum(), rtol=1e-4, atol=1e-7)
                if elementwise:
                    torch.testing.assert_close(mo.elementwise_variance, G.var(0), rtol=1e-4,
                                               atol=1e-6)
                from gradprobe.probes.snr import snr_from_samples
                ref = snr_from_samples(G.reshape(G.shape[0], -1))
                assert float(mo.snr) == pytest.approx(ref.snr, rel=1e-3, abs=1e-6)
    for p in model.parameters():
        assert p.grad is None  # gradient_moments leaves .grad alone


def test_gradient_variance_keys_and_shapes():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    tot = gradient_variance(model, F.cross_entropy, (x, y))
    el = gradient_variance(model, F.cross_entropy, (x, y), elementwise=True)
    assert set(tot) == set(el) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for k in tot:
        assert tot[k].dim() == 0 and el[k].shape == dict(model.named_parameters())[k].shape
        torch.testing.assert_close(el[k].sum(), tot[k], rtol=1e-4, atol=1e-8)


# ---- the monitor -------------------------------------------------------------------------------
def train(model, monitor, steps, g, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x = torch.randn(steps, 32, 10, generator=g)
    y = torch.randint(0, 3, (steps, 32), generator=g)
    first_grad = None
    for s in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x[s]), y[s]).backward()
        if s == 0:
            first_grad = model[0].weight.grad.norm().item()
        with torch.no_grad():  # an evaluation forward: not a training step
            model(x[s])
        opt.step()
    monitor.close()
    return x, y, first_grad


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))


def test_monitor_logs_to_tensorboard_on_the_right_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    model = make_model()
    ref = make_model()  # a twin to compute the expected step-0 values
    writer = SummaryWriter(str(tmp_path / "tb"))
    mon = gp.GradientMonitor(model, every=4, writer=writer,
                             probes=("grad_norm", "snr", "activity", "weight_norm", "histograms"))
    g = torch.Generator().manual_seed(0)
    x, y, first_grad = train(model, mon, 10, g)
    writer.close()
    ea = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "histograms": 0})
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    for layer in ("0", "2"):
        for probe in ("grad_norm", "snr", "variance", "weight_norm"):
            assert f"{probe}/{layer}" in tags
    assert {"activity/1", "dead/1"} <= tags
    assert {"gradient/0", "weight/2"} <= set(ea.Tags()["histograms"])
    for tag in tags:
        assert [e.step for e in ea.Scalars(tag)] == [0, 4, 8], tag
    # the logged step-0 values are the true ones
    assert ea.Scalars("grad_norm/0")[0].value == pytest.approx(first_grad, rel=1e-5)
    ps = brute_force(ref, x[0], y[0])
    G = torch.cat([ps["0.weight"].reshape(32, -1)], 1)
    from gradprobe.probes.snr import snr_from_samples
    want = snr_from_samples(G)
    assert ea.Scalars("variance/0")[0].value == pytest.approx(want.noise, rel=1e-4)
    assert ea.Scalars("snr/0")[0].value == pytest.approx(want.snr, rel=1e-3, abs=1e-6)
    pre = ref[0](x[0])
    assert ea.Scalars("activity/1")[0].value == pytest.approx(float((pre > 0).float().mean()))
    assert mon.history[0]["step"] == 0 and len(mon.history) == 3


def test_monitor_jsonl_and_csv(tmp_path):
    model = make_model()
    mon = gp.GradientMonitor(model, every=3, writer=[tmp_path / "m.jsonl", tmp_path / "m.csv"])
    train(model, mon, 7, torch.Generator().manual_seed(2))
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 3, 6]
    assert all(math.isfinite(v) for r in rows for v in r.values())
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "step,tag,value"
    assert {int(line.split(",")[0]) for line in lines[1:]} == {0, 3, 6}


def test_nothing_is_computed_on_other_steps(monkeypatch):
    calls = []
    real = var_mod.moments

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(var_mod, "moments", counting)
    model = make_model()
    mon = gp.GradientMonitor(model, every=5)
    train(model, mon, 11, torch.Generator().manual_seed(3))
    assert len(calls) == 3 * 2  # steps 0, 5, 10; two affine layers each
    assert [h["step"] for h in mon.history] == [0, 5, 10]
    # after close() the hooks are gone: more training logs nothing
    F.cross_entropy(model(torch.randn(4, 10)), torch.zeros(4, dtype=torch.long)).backward()
    assert len(calls) == 6


def test_monitor_refuses_bad_arguments(tmp_path):
    model = make_model()
    with pytest.raises(ValueError, match="every"):
        gp.GradientMonitor(model, every=0)
    with pytest.raises(ValueError, match="unknown probes"):
        gp.GradientMonitor(model, probes=("nope",))
    with pytest.raises(ValueError, match=".jsonl or .csv"):
        gp.GradientMonitor(model, writer=tmp_path / "x.txt")
