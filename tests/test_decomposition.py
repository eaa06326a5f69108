"""N1/N2 and the losses of SPEC A4, the A6 model, and the A4–A6 experiments at smoke scale."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from gradprobe.nets.tuple_nets import (
    N1,
    decomposition_loss,
    end_to_end_loss,
    hinge,
    make_tuple_net,
)
from gradprobe.probes.snr import flatten_grads, per_sample_grads
from gradprobe.runs.store import execute, resolve
from gradprobe.tasks.lines import sample_tuples


def _batch(k: int = 3, b: int = 6):
    return sample_tuples(b, k, torch.Generator().manual_seed(0))


def test_decomposition_loss_reduces_to_end_to_end_without_its_extra_term() -> None:
    net = make_tuple_net(3, torch.Generator().manual_seed(1))
    x, yi, yt = _batch()
    out, scores = net(x)
    e2e = end_to_end_loss(out, yt)
    dec0 = decomposition_loss(out, scores, yt, yi, weight=0.0)
    assert torch.equal(e2e, dec0)
    g_e2e = torch.autograd.grad(e2e, list(net.parameters()), retain_graph=True)
    g_dec0 = torch.autograd.grad(dec0, list(net.parameters()), retain_graph=True)
    for a, b in zip(g_e2e, g_dec0):
        assert torch.equal(a, b)
    # with weight 1 the extra term is the mean per-image hinge on N1's scores
    dec1 = decomposition_loss(out, scores, yt, yi)
    manual = torch.clamp(1 - out * yt, min=0).mean() + torch.clamp(1 - scores * yi, min=0).mean()
    torch.testing.assert_close(dec1, manual)
    assert float(hinge(torch.tensor(2.0))) == 0.0 and float(hinge(torch.tensor(-1.0))) == 2.0


def test_tuple_net_scores_each_image_with_the_shared_n1() -> None:
    net = make_tuple_net(3, torch.Generator().manual_seed(2))
    x, _, _ = _batch()
    out, scores = net(x)
    assert out.shape == (6,) and scores.shape == (6, 3)
    for j in range(3):
        torch.testing.assert_close(scores[:, j], net.n1(x[:, j : j + 1]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, net.n2(scores))


def test_init_is_truncated_normal_fan_in_and_seeded() -> None:
    a = make_tuple_net(2, torch.Generator().manual_seed(3))
    b = make_tuple_net(2, torch.Generator().manual_seed(3))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q)
        if name.endswith("bias"):
            assert p.eq(0).all()
        else:
            std = 1.0 / p[0].numel() ** 0.5
            assert p.abs().max() <= 2 * std + 1e-6
    assert isinstance(N1().features[1], nn.Identity)  # no nonlinearity after the convs
    assert isinstance(N1(conv_relu=True).features[1], nn.ReLU)


def test_channels_last_gives_the_same_function() -> None:
    net = make_tuple_net(2, torch.Generator().manual_seed(4))
    x, _, _ = _batch(2)
    ref = net(x)[0]
    net = net.to(memory_format=torch.channels_last)
    torch.testing.assert_close(net(x)[0], ref, rtol=1e-4, atol=1e-5)


def test_basis_affine_is_linear_on_one_hot_and_second_moments_match_brute_force() -> None:
    from gradprobe.experiments.noise_decomposition import (
        BasisAffine,
        objective,
        second_moments,
        teacher,
    )

    d, k, n = 7, 5, 300
    model = BasisAffine(d, k, torch.Generator().manual_seed(5))
    lin = nn.Linear(d, k)
    with torch.no_grad():
        lin.weight.copy_(model.weight)
        lin.bias.copy_(model.bias)
    idx = torch.tensor([0, 3, 6, 3])
    torch.testing.assert_close(model(idx), lin(torch.eye(d)[idx]))

    labels = torch.randint(0, k, (d,), generator=torch.Generator().manual_seed(6))
    z = teacher(labels[idx], k, "dec", torch.Generator())
    assert torch.equal(z, torch.eye(k)[labels[idx]])
    z = teacher(labels[idx], k, "e2e", torch.Generator().manual_seed(0))
    assert torch.equal(z[torch.arange(4), labels[idx]], torch.ones(4))
    assert set(z.unique().tolist()) <= {-1.0, 1.0}

    mom = second_moments(model, labels, k, n, torch.Generator().manual_seed(7))
    # brute force: full per-sample gradients of the Linear layer on one-hot inputs, same draws
    g = torch.Generator().manual_seed(7)
    idx = torch.randint(0, d, (n,), generator=g)
    for m in ("e2e", "dec"):
        z = teacher(labels[idx], k, m, g)
        grads = per_sample_grads(lin, objective, torch.eye(d)[idx], z)
        brute = float((flatten_grads(grads).double() ** 2).sum(1).mean())
        assert mom[m] == pytest.approx(brute, rel=1e-5)


@pytest.mark.parametrize("name,figures", [
    ("end_to_end", {"end_to_end_accuracy.png", "line_examples.png"}),
    ("snr", {"snr.png"}),
    ("noise_decomposition", {"noise_decomposition.png"}),
])
def test_experiment_smoke(tmp_path, name: str, figures: set[str]) -> None:
    s = execute(resolve(name, "smoke", out=tmp_path), quiet=True)
    assert s["status"] == "complete", s.get("error")
    assert s["claims"] and all(isinstance(c["holds"], bool) for c in s["claims"])
    run_dir = tmp_path / name / s["run_id"]
    assert figures <= set(s["figures"])
    assert all((run_dir / f).stat().st_size > 1000 for f in figures)
    json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("name,module,fn", [
    ("end_to_end", "gradprobe.experiments.end_to_end", "sample_tuples"),
    ("noise_decomposition", "gradprobe.experiments.noise_decomposition", "teacher"),
])
def test_resume_after_a_crash_gives_the_same_curves(tmp_path, monkeypatch, name, module,
                                                    fn) -> None:
    """Kill a run mid-training (after checkpoints were written); the rerun resumes from the
    checkpoint and must end with the curves of an uninterrupted run."""
    import importlib

    monkeypatch.setenv("GRADPROBE_CHECKPOINT_EVERY", "0")  # checkpoint at every evaluation
    ref = execute(resolve(name, "smoke", out=tmp_path / "ref"), quiet=True)
    mod = importlib.import_module(module)
    real, calls = getattr(mod, fn), {"n": 0}

    def crashing(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 37:
            raise RuntimeError("simulated kill")
        return real(*a, **kw)

    monkeypatch.setattr(mod, fn, crashing)
    broken = execute(resolve(name, "smoke", out=tmp_path / "run"), quiet=True)
    assert broken["status"] == "failed"
    monkeypatch.setattr(mod, fn, real)
    again = execute(resolve(name, "smoke", out=tmp_path / "run"), quiet=True)
    assert again["status"] == "complete" and again["resumed"]
    for method, per_k in ref["results"]["curves"].items():
        for k, c in per_k.items():
            c2 = again["results"]["curves"][method][k]
            assert c2["steps"] == c["steps"]
            key = "accuracy" if "accuracy" in c else "objective"
            assert c2[key] == c[key]
