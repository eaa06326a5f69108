"""gp.probe: verdicts on nets built to have each pathology, quiet on a healthy net, and the model
left exactly as it was found (MLP, CNN with train-mode BatchNorm, resnet, tied transformer)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import gradprobe as gp
from gradprobe.diagnosis.verdicts import Thresholds

F = nn.functional


def chain(depth: int, width: int, d_in: int, act: type[nn.Module], d_out: int,
          he: bool = True, g: torch.Generator | None = None) -> nn.Sequential:
    g = g or torch.Generator().manual_seed(0)
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        lin = nn.Linear(d, width)
        std = math.sqrt(2 / d) if he else 1 / math.sqrt(d)
        with torch.no_grad():
            lin.weight.normal_(0, std, generator=g)
            lin.bias.zero_()
        layers += [lin, act()]
        d = width
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


def gaussian_task(n: int = 128, d: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g)
    return x, (x @ w > 0).long()


def fired(report) -> set[str]:
    return {f.kind for f in report.findings if f.fired}


def test_healthy_shallow_net_is_quiet():
    x, y = gaussian_task()
    r = gp.probe(chain(1, 64, 16, nn.ReLU, 2), F.cross_entropy, (x, y))
    assert fired(r) == set(), r.table()
    assert {f.kind for f in r.findings} == {"vanishing", "exploding", "low_snr", "shattered",
                                            "dead", "saturated"}
    assert r.shattering["lag1"] > 0.8  # a shallow net's gradient is brown noise
    # the product bound holds sample by sample on a chain of affine layers
    assert all(d["bound_holds"] for d in r.layers)


def test_deep_sigmoid_chain_vanishes():
    x, y = gaussian_task()
    r = gp.probe(chain(10, 32, 16, nn.Sigmoid, 2, he=False), F.cross_entropy, (x, y))
    assert "vanishing" in fired(r)
    v = next(f for f in r.findings if f.kind == "vanishing")
    assert v.value < 1e-4  # (1/4)^10-like decay, Nielsen's chapter
    assert all(d["bound_holds"] for d in r.layers)  # measured ≤ product bound


def test_deep_unnormalised_relu_net_shatters():
    x, y = gaussian_task()
    r = gp.probe(chain(50, 64, 16, nn.ReLU, 2), F.cross_entropy, (x, y), max_samples=16)
    assert "shattered" in fired(r)
    assert r.shattering["lag1"] < 0.5
    assert "vanishing" not in fired(r)  # He init keeps ‖δ‖ balanced


def test_dead_units_are_reported():
    x, y = gaussian_task()
    m = chain(2, 64, 16, nn.ReLU, 2)
    with torch.no_grad():
        m[2].bias[:32] = -100.0  # half of the second hidden layer can never be active
    r = gp.probe(m, F.cross_entropy, (x, y))
    assert fired(r) == {"dead"}
    assert next(f for f in r.findings if f.kind == "dead").value == pytest.approx(0.5)


def test_saturated_units_are_reported():
    x, y = gaussian_task()
    m = chain(1, 32, 16, nn.Tanh, 2, he=False)
    with torch.no_grad():
        m[0].weight.mul_(50.0)
    r = gp.probe(m, F.cross_entropy, (x, y))
    assert "saturated" in fired(r)


def test_thresholds_are_configurable():
    x, y = gaussian_task()
    r = gp.probe(chain(1, 64, 16, nn.ReLU, 2), F.cross_entropy, (x, y),
                 thresholds=Thresholds(shattered_lag1=0.999))
    assert "shattered" in fired(r)


# ---- arbitrary modules and state preservation --------------------------------------------------
class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.2))
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.body(x))


class Block(nn.Module):
    def __init__(self, w: int) -> None:
        super().__init__()
        self.bn, self.fc = nn.BatchNorm1d(w), nn.Linear(w, w)

    def forward(self, x):
        return x + 0.5 * self.fc(torch.relu(self.bn(x)))


class TinyLM(nn.Module):
    """Embedding → one pre-LN transformer block → LayerNorm → head tied to the embedding."""

    def __init__(self, vocab: int = 20, d: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.block = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.1, batch_first=True,
                                                norm_first=True)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight  # tied

    def forward(self, tok):
        return self.head(self.ln(self.block(self.emb(tok))))


def lm_loss(logits, tok):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tok[:, 1:].reshape(-1))


def cases():
    g = torch.Generator().manual_seed(1)
    mlp = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
    yield "mlp", mlp, F.cross_entropy, (torch.randn(24, 10, generator=g),
                                        torch.randint(0, 3, (24,), generator=g))
    yield "cnn_bn_train", CNN(), F.cross_entropy, (torch.randn(16, 3, 8, 8, generator=g),
                                                   torch.randint(0, 5, (16,), generator=g))
    res = nn.Sequential(nn.Linear(6, 16), Block(16), Block(16), nn.ReLU(), nn.Linear(16, 1))
    yield "resnet", res, lambda o, t: F.mse_loss(o.squeeze(-1), t), (
        torch.randn(20, 6, generator=g), torch.randn(20, generator=g))
    tok = torch.randint(0, 20, (8, 6), generator=g)
    yield "transformer_tied", TinyLM(), lm_loss, (tok, tok)


def snapshot(model: nn.Module):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()],
            [(p.grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()],
            torch.get_rng_state())


@pytest.mark.parametrize("name,model,loss_fn,batch", list(cases()), ids=lambda v: (
    v if isinstance(v, str) else ""))
def test_probe_runs_on_any_module_and_restores_state(name, model, loss_fn, batch, tmp_path):
    model.train()
    loss_fn(model(batch[0]), batch[1]).backward()  # a .grad to keep
    for m in model.modules():  # a mixed mode pattern to keep
        if isinstance(m, nn.Dropout):
            m.eval()
    before = snapshot(model)
    r = gp.probe(model, loss_fn, batch, max_samples=8)
    sd, modes, grads, rng = snapshot(model)
    assert set(sd) == set(before[0])
    for k in sd:
        assert torch.equal(sd[k], before[0][k]), f"{name}: {k} changed"
    assert modes == before[1]
    for (g_obj, g_val), (g0_obj, g0_val) in zip(grads, before[2], strict=True):
        assert g_obj is g0_obj and (g_val is None or torch.equal(g_val, g0_val))
    assert torch.equal(rng, before[3])
    # the report itself
    assert r.layers and all(math.isfinite(d["speed"]) for d in r.layers)
    assert all(d["snr"] is not None for d in r.layers)
    assert len(r.findings) == 6
    j = json.loads(r.save_json(tmp_path / "r.json").read_text())
    assert j["model"] == type(model).__name__ and len(j["findings"]) == 6
    assert r.plot(tmp_path / "r.png").stat().st_size > 10_000
    assert "verdicts:" in str(r)
    if name == "cnn_bn_train":
        assert any("batch norm" in n for n in r.notes)
    if name == "transformer_tied":
        assert "reason" in r.shattering  # token ids have no input gradient
        assert [d["name"] for d in r.layers].count("emb") == 1


def test_bn_frozen_output_matches_train_mode():
    """Freezing train-mode BN at the batch's statistics reproduces the train-mode output."""
    from gradprobe.probes.state import preserved, sample_independent

    m = CNN().train()
    m.body[-1].eval()  # no dropout noise in the comparison
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with preserved(m):
        want = m(x).detach()
    with preserved(m):
        sample_independent(m, x)
        got = m(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_per_sample_memory_cap_uses_fewer_samples():
    x, y = gaussian_task()
    m = chain(1, 64, 16, nn.ReLU, 2)
    n_params = sum(p.numel() for p in m.parameters())
    r = gp.probe(m, F.cross_entropy, (x, y), max_floats=10 * n_params)
    assert r.samples == 10 and any("per-sample gradients on 10" in n for n in r.notes)


# ---- coverage: every unit kind against a brute-force per-sample loop ---------------------------
from gradprobe.probes.snr import snr_from_samples  # noqa: E402
from tests import fixtures as fx  # noqa: E402


def _check_rows_against_loop(model, loss_fn, x, y, report, batch_dim=0):
    """Each row's noise and SNR equal those of per-sample gradients from a loop over samples."""
    ref = fx.brute_force_grads(model, loss_fn, x, y, report.samples, batch_dim)
    count: dict[str, int] = {}
    for d in report.layers:
        for p in d["params"]:
            count[p] = count.get(p, 0) + 1
    checked = 0
    for d in report.layers:
        if d["snr"] is None or any(count[p] > 1 for p in d["params"]):
            continue  # tied weights: each call's share, not the parameter's total
        G = torch.cat([ref[p].reshape(report.samples, -1) for p in d["params"]], 1)
        want = snr_from_samples(G)
        assert d["noise"] == pytest.approx(want.noise, rel=2e-3, abs=1e-9), d["name"]
        assert d["snr"] == pytest.approx(want.snr, rel=2e-3, abs=1e-5), d["name"]
        checked += 1
    return checked


def _case(name):
    torch.manual_seed(0)
    if name == "tokens":
        ids, y = fx.token_batch()
        return fx.TokenNet(), F.cross_entropy, ids, y, 0
    if name in ("encoder", "encoder_seq_first"):
        x, y = fx.seq_batch()
        bf = name == "encoder"
        return fx.EncoderNet(batch_first=bf), F.cross_entropy, x if bf else x.transpose(0, 1), \
            y, 0 if bf else 1
    if name == "mha":
        x, y = fx.seq_batch()
        return fx.MHANet(), F.cross_entropy, x, y, 0
    x, y = fx.seq_batch(d=5)
    return fx.RecurrentNet(getattr(nn, name)), F.cross_entropy, x, y, 0


@pytest.mark.parametrize("name", ["tokens", "encoder", "encoder_seq_first", "mha", "RNN", "LSTM",
                                  "GRU"])
def test_probe_measures_every_parameter_like_a_per_sample_loop(name):
    model, loss, x, y, bd = _case(name)
    model.train()
    r = gp.probe(model, loss, (x, y), batch_dim=bd)
    assert r.coverage["unmeasured"] == {}, r.coverage
    assert r.coverage["measured"] == len([p for p in model.parameters() if p.requires_grad])
    assert _check_rows_against_loop(model, loss, x, y, r, bd) >= 2
    assert all(m.training for m in model.modules())  # restored


def test_probe_names_multihead_attention_and_gelu():
    model, loss, x, y, _ = _case("encoder")
    r = gp.probe(model, loss, (x, y))
    kinds = {d["kind"] for d in r.layers}
    assert {"MultiheadAttention", "LayerNorm", "Linear"} <= kinds
    mha = next(d for d in r.layers if d["kind"] == "MultiheadAttention")
    assert any(p.endswith("out_proj.weight") for p in mha["params"])
    tok = gp.probe(fx.TokenNet(), F.cross_entropy, fx.token_batch())
    assert [a["name"] for a in tok.activity] == ["act"]  # GELU counted as ReLU-like


@pytest.mark.parametrize("name", ["gpt2", "bert", "vit", "t5"])
def test_probe_on_hugging_face_models_in_train_mode(name):
    pytest.importorskip("transformers")
    model, loss, (x, y) = fx.hf_models()[name]
    r = gp.probe(model, loss, (x, y))
    assert all(m.training for m in model.modules())  # every mode restored
    trainable = [k for k, p in model.named_parameters() if p.requires_grad]
    un = r.coverage["unmeasured"]
    assert r.coverage["measured"] + len(un) == len(trainable)
    assert all(why for why in un.values())  # each unmeasured one has its reason
    assert r.coverage["measured"] >= 0.9 * len(trainable)
    assert _check_rows_against_loop(model, loss, x, y, r) >= 5
    json.dumps(r.to_dict())


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e38])
def test_non_finite_weights_fire_exploding_and_name_the_layer(value):
    x, y = gaussian_task()
    m = chain(3, 16, 16, nn.ReLU, 2)
    with torch.no_grad():
        m[2].weight.fill_(value)
    r = gp.probe(m, F.cross_entropy, (x, y))
    ex = next(f for f in r.findings if f.kind == "exploding")
    assert ex.fired and ex.layer.startswith("2"), ex
