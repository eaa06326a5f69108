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
    assert all(math.isfinite(v) for r in rows for k, v in r.items() if k != "notes")
    assert "notes" in rows[0] and "notes" not in rows[1]  # coverage and what is measured
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


# ---- every unit kind, accumulation, loss scaling, autocast, layouts, clipping ------------------
from gradprobe.probes.units import sample_units  # noqa: E402
from tests import fixtures as fx  # noqa: E402


def expected(model, ref):
    """{tag: value} the monitor must log, from per-sample gradients ref (name → (n, ...))."""
    out = {}
    names = {id(p): k for k, p in model.named_parameters()}
    for unit, u in sample_units(model).items():
        ps = [u.params["weight"]] if "weight" in u.params else list(u.params.values())
        G = torch.cat([ref[names[id(p)]].reshape(ref[names[id(p)]].shape[0], -1) for p in ps], 1)
        n = G.shape[0]
        mean_sq, noise = G.mean(0).pow(2).sum(), G.var(0).sum()
        out[f"grad_norm/{unit}"] = float(mean_sq.sqrt())
        out[f"variance/{unit}"] = float(noise)
        out[f"snr/{unit}"] = float((mean_sq - noise / n) / noise)
    return out


def assert_logged(rec, want, rel=2e-3):
    for tag, v in want.items():
        assert tag in rec, (tag, sorted(rec))
        assert rec[tag] == pytest.approx(v, rel=rel, abs=1e-7), tag


@pytest.mark.parametrize("name", ["tokens", "encoder", "encoder_seq_first", "mha", "LSTM", "GRU"])
def test_monitor_covers_every_unit_like_a_per_sample_loop(name):
    torch.manual_seed(0)
    bd = 1 if name == "encoder_seq_first" else 0
    if name == "tokens":
        model, (x, y) = fx.TokenNet(), fx.token_batch()
    elif name.startswith("encoder"):
        model, (x, y) = fx.EncoderNet(batch_first=bd == 0), fx.seq_batch()
        x = x.transpose(0, 1) if bd else x
    elif name == "mha":
        model, (x, y) = fx.MHANet(), fx.seq_batch()
    else:
        model, (x, y) = fx.RecurrentNet(getattr(nn, name)), fx.seq_batch(d=5)
    model.eval()  # no dropout: the reference loop must see the same function
    mon = gp.GradientMonitor(model, every=1, batch_dim=bd)
    F.cross_entropy(model(x), y).backward()
    mon.close()
    rec = mon.history[0]
    assert not any("not measured" in n for n in rec["notes"])
    assert_logged(rec, expected(model, fx.brute_force_grads(model, F.cross_entropy, x, y,
                                                            batch_dim=bd)))


def test_accumulation_pools_micro_batches_into_one_optimizer_step():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: every step sees the same weights
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 10, generator=g), torch.randint(0, 3, (24,), generator=g)
    mon = gp.GradientMonitor(model, every=2, optimizer=opt)
    for _ in range(5):  # optimizer steps 0..4, each of 3 micro-batches of 8
        opt.zero_grad()
        for k in range(3):
            (F.cross_entropy(model(x[8 * k:8 * k + 8]), y[8 * k:8 * k + 8]) / 3).backward()
        opt.step()
    mon.close()
    assert [h["step"] for h in mon.history] == [0, 2, 4]
    want = expected(model, fx.brute_force_grads(model, F.cross_entropy, x, y))
    for h in mon.history:
        assert_logged(h, want)
    assert mon.history[0]["grad_norm/0"] == pytest.approx(float(model[0].weight.grad.norm()),
                                                          rel=1e-5)


def test_grad_scaler_statistics_are_of_the_unscaled_gradient():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 10, generator=g), torch.randint(0, 3, (16,), generator=g)
    mon = gp.GradientMonitor(model, every=1, optimizer=opt, scaler=scaler)
    for _ in range(2):
        opt.zero_grad()
        scaler.scale(F.cross_entropy(model(x), y)).backward()
        scaler.step(opt)
        scaler.update()
    mon.close()
    assert "update" not in vars(scaler)  # the wrapper is gone
    want = expected(model, fx.brute_force_grads(model, F.cross_entropy, x, y))
    assert [h["step"] for h in mon.history] == [0, 1]
    for h in mon.history:
        assert_logged(h, want)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_never_breaks_backward_and_logs_float32(dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3), nn.LayerNorm(3))
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 3, (8,))
    mon = gp.GradientMonitor(model, every=1)
    with torch.autocast("cpu", dtype=dtype):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    mon.close()
    rec = mon.history[0]
    assert "errors" not in rec
    ref = expected(model, fx.brute_force_grads(model, F.cross_entropy, x, y))
    assert_logged(rec, ref, rel=0.1)  # half-precision activations: close, not equal
    assert all(math.isfinite(v) for k, v in rec.items() if k not in ("step", "notes"))


def test_clipping_does_not_change_what_is_logged():
    logs = []
    for clip in (False, True):
        model = make_model()
        mon = gp.GradientMonitor(model, every=1)
        x, y = torch.randn(8, 10, generator=torch.Generator().manual_seed(4)), torch.arange(8) % 3
        F.cross_entropy(model(x), y).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
        mon.close()
        logs.append(mon.history[0])
    assert logs[0] == logs[1]
    assert "before clip_grad_norm_" in logs[0]["notes"][0]


def test_probe_while_a_monitor_is_attached_leaves_the_monitor_alone():
    model = make_model()
    mon = gp.GradientMonitor(model, every=1)
    x, y = torch.randn(8, 10), torch.arange(8) % 3
    gp.probe(model, F.cross_entropy, (x, y))
    assert mon.steps == 0 and mon.history == []
    F.cross_entropy(model(x), y).backward()
    mon.close()
    assert [h["step"] for h in mon.history] == [0]


def test_nan_tracer_names_the_first_module():
    model = make_model()
    with torch.no_grad():
        model[2].weight[0, 0] = math.inf
    mon = gp.GradientMonitor(model, every=1)
    with pytest.warns(RuntimeWarning, match="first at 2"):
        F.cross_entropy(model(torch.randn(4, 10)), torch.zeros(4, dtype=torch.long)).backward()
    mon.close()
    assert mon.history[0]["nonfinite"] == "2 (output)"


@pytest.mark.parametrize("name", ["gpt2", "bert"])
def test_monitor_on_hugging_face_models(name):
    pytest.importorskip("transformers")
    model, loss, (x, y) = fx.hf_models()[name]
    model.eval()
    mon = gp.GradientMonitor(model, every=1)
    loss(model(**x), y).backward()
    mon.close()
    rec = mon.history[0]
    n_params = sum(p.numel() for p in model.parameters())
    covered = {id(p) for u in sample_units(model).values() for p in u.params.values()}
    assert sum(p.numel() for p in model.parameters() if id(p) in covered) == n_params
    skipped = [n for n in rec["notes"] if n.startswith("not measured")]
    assert all("position" in n or "wpe" in n for n in skipped)  # shared across the batch
    want = expected(model, fx.brute_force_grads(model, loss, x, y))
    tied = {u for u, un in sample_units(model).items()
            if any(p is model.get_input_embeddings().weight for p in un.params.values())}
    pos = {k for k in want if "position" in k or "wpe" in k}
    assert_logged(rec, {k: v for k, v in want.items()
                        if k.split("/", 1)[1] not in tied and k not in pos})
    assert not any(k in rec for k in pos)


@pytest.mark.parametrize("every", ["2", True, 2.0])
def test_every_must_be_an_int(every):
    with pytest.raises(TypeError, match="every"):
        gp.GradientMonitor(make_model(), every=every)


def test_a_bad_writer_in_a_list_leaves_nothing_open(tmp_path):
    with pytest.raises(ValueError, match=".jsonl or .csv"):
        gp.GradientMonitor(make_model(), writer=[tmp_path / "ok.jsonl", tmp_path / "bad.txt"])
    assert not (tmp_path / "ok.jsonl").exists()
    m = make_model()
    with pytest.raises(ValueError, match="every"):
        gp.GradientMonitor(m, every=0, writer=tmp_path / "ok.jsonl")
    assert not (tmp_path / "ok.jsonl").exists()
    assert not m._forward_hooks and not m._forward_pre_hooks


@pytest.mark.slow  # ~13 s: dynamo tracing
@pytest.mark.filterwarnings("ignore:The .grad attribute:UserWarning")  # raised inside dynamo
def test_torch_compile_attach_before_works_without_recompiles_attach_after_refused():
    import torch._dynamo

    model = make_model()
    mon = gp.GradientMonitor(model, every=2)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(8, 10, generator=g), torch.arange(8) % 3
    for s in range(12):
        if s == 4:
            graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        F.cross_entropy(compiled(x), y).backward()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # no recompiles
    mon.close()
    assert [h["step"] for h in mon.history] == [0, 2, 4, 6, 8, 10]
    for p in model.parameters():
        p.grad = None
    assert_logged(mon.history[-1], expected(model, fx.brute_force_grads(model, F.cross_entropy,
                                                                        x, y)))
    with pytest.raises(ValueError, match="before torch.compile"):
        gp.GradientMonitor(compiled)


def _ddp_worker(rank, world, port, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    model = make_model()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.0)
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(16, 10, generator=g), torch.randint(0, 3, (16,), generator=g)
    mon = gp.GradientMonitor(ddp, every=1, optimizer=opt, writer=f"{out}/r{rank}.jsonl")
    for _ in range(2):
        opt.zero_grad()
        xs, ys = x[rank * 8:(rank + 1) * 8], y[rank * 8:(rank + 1) * 8]
        F.cross_entropy(ddp(xs), ys).backward()
        opt.step()
    mon.close()
    torch.save(mon.history, f"{out}/h{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # ~40 s: two spawned processes
def test_ddp_two_processes_log_the_global_batch(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    h0 = torch.load(tmp_path / "h0.pt")
    model = make_model()
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(16, 10, generator=g), torch.randint(0, 3, (16,), generator=g)
    want = {k.replace("/", "/module.", 1): v for k, v in
            expected(model, fx.brute_force_grads(model, F.cross_entropy, x, y)).items()}
    assert [h["step"] for h in h0] == [0, 1]
    for h in h0:
        assert_logged(h, want)
    assert (tmp_path / "r0.jsonl").exists() and not (tmp_path / "r1.jsonl").read_text()
