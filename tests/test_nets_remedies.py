"""Each remedy's defining property at initialisation (nets/remedies.py), and the E1 experiment."""

from __future__ import annotations

import math

import pytest
import torch

from gradprobe.nets import remedies as R

N_IN, N_OUT, WIDTH = 12, 5, 16


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x(n: int = 32) -> torch.Tensor:
    return torch.randn(n, N_IN, generator=_g(1))


@pytest.mark.parametrize("variant", ["rezero", "skipinit", "fixup"])
def test_gated_residual_nets_are_identity_plus_first_layer(variant: str) -> None:
    """ReZero / SkipInit (α = 0) and Fixup (last branch layer 0): every block is the identity,
    so the net is readout(embed(x))."""
    net = R.build(variant, 6, WIDTH, N_IN, N_OUT, _g())
    R.for_probing(net, _x())
    h = torch.randn(8, WIDTH, generator=_g(2))
    torch.testing.assert_close(net.blocks(h), h, rtol=0, atol=0)
    x = _x()
    torch.testing.assert_close(net(x), net.readout(net.embed(x)), rtol=0, atol=0)


def test_fixup_scales_first_branch_layer_and_zeroes_readout() -> None:
    torch.manual_seed(0)
    net = R.build("fixup", 64, 256, N_IN, N_OUT, _g())
    blocks = list(net.blocks)
    assert len(blocks) == 32
    w = torch.cat([b.linear1.weight.reshape(-1) for b in blocks])
    # He variance 2/fan_in times (B^(−1/2))² = 1/B, B = 32 branches (m = 2 layers each)
    assert w.var().item() == pytest.approx(2.0 / 256 / 32, rel=0.02)
    assert all(float(b.linear2.weight.detach().abs().max()) == 0.0 for b in blocks)
    assert float(net.readout.weight.detach().abs().max()) == 0.0


def test_gates_are_learned_parameters_that_start_at_zero() -> None:
    net = R.build("skipinit", 3, WIDTH, N_IN, N_OUT, _g())
    names = [n for n, _ in net.named_parameters() if n.endswith("alpha")]
    assert len(names) == 3
    loss = net(_x()).pow(2).sum()
    loss.backward()
    assert all(float(b.alpha.detach()) == 0.0 for b in net.blocks)
    assert any(float(b.alpha.grad.abs()) > 0 for b in net.blocks)  # the gate can leave 0


def test_scaled_ws_weights_are_zero_mean_unit_variance_per_output() -> None:
    layer = R.WSLinear(200, 50, _g())
    with torch.no_grad():
        layer.weight.mul_(3.0).add_(0.7)  # standardisation must undo any scale and shift
    w = layer.standardized_weight().detach() * math.sqrt(200)
    torch.testing.assert_close(w.mean(1), torch.zeros(50), atol=1e-5, rtol=0)
    torch.testing.assert_close(w.var(1, unbiased=False), torch.ones(50), atol=1e-3, rtol=0)


def test_nf_block_keeps_signal_variance_growth_predicted_by_beta() -> None:
    """Var(x_l) ≈ 1 + l·α² for unit-variance x_0 (Brock et al. 2021a, §4)."""
    net = R.build("scaled_ws", 8, 512, 512, N_OUT, _g())
    h = torch.randn(256, 512, generator=_g(3))
    with torch.no_grad():
        for block in net.blocks:
            h = block(h)
    assert h.var().item() == pytest.approx(1.0 + 8 * 0.2**2, rel=0.1)


def test_looks_linear_net_is_linear_at_init() -> None:
    net = R.build("looks_linear", 5, WIDTH, N_IN, N_OUT, _g())
    x = _x()
    a = torch.autograd.functional.jacobian(lambda z: net(z.unsqueeze(0))[0], x[0])
    with torch.no_grad():
        torch.testing.assert_close(net(x), x @ a.T, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["orthogonal", "orthogonal_tanh"])
def test_orthogonal_hidden_weights(variant: str) -> None:
    net = R.build(variant, 3, WIDTH, N_IN, N_OUT, _g())
    gain2 = 2.0 if variant == "orthogonal" else 1.0
    hidden = [m for m in net if isinstance(m, torch.nn.Linear)][1:-1]
    for lin in hidden:
        w = lin.weight.detach()
        torch.testing.assert_close(w @ w.T, gain2 * torch.eye(WIDTH), atol=1e-5, rtol=0)


def test_resnet_branch_scale_and_frozen_bn() -> None:
    net = R.build("resnet", 4, WIDTH, N_IN, N_OUT, _g(), beta=0.1)
    R.for_probing(net, _x(64))
    x = _x(64)
    # frozen statistics: a sample's output does not depend on the rest of the batch
    torch.testing.assert_close(net(x[:3]), net(x)[:3])
    assert all(b.beta == 0.1 for b in net.blocks)


@pytest.mark.skipif(not R.dks_available(), reason="optional dks extra not installed")
@pytest.mark.parametrize("variant", ["dks", "tat"])
def test_dks_activations_fix_q_and_set_the_c_map_slope(variant: str) -> None:
    """DKS/TAT transform φ so that E φ̂(z)² = 1 for z ~ N(0, 1) (the q map keeps q = 1) and, for
    DKS, the local C map's slope at 1, E φ̂′(z)², equals ζ^(1/D) for D layers (Martens et al.
    2021, "Summary of our method", ζ = 1.5). Checked by Monte Carlo on 10⁶ samples."""
    depth = 16  # TAT's η = 0.9 needs ≥ ~16 leaky-ReLU layers
    net = R.build(variant, depth, WIDTH, N_IN, N_OUT, _g())
    act = next(m for m in net if isinstance(m, R.Elementwise))
    z = torch.randn(1_000_000, generator=_g(5), dtype=torch.float64).requires_grad_(True)
    y = act(z)
    (dy,) = torch.autograd.grad(y.sum(), z)
    assert y.detach().pow(2).mean().item() == pytest.approx(1.0, abs=0.01)
    if variant == "dks":
        assert dy.pow(2).mean().item() == pytest.approx(1.5 ** (1 / depth), abs=0.01)
    hidden = [m for m in net if isinstance(m, torch.nn.Linear)][1:-1]
    w = hidden[0].weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(WIDTH), atol=1e-5, rtol=0)  # SUO, square


@pytest.mark.skipif(not R.dks_available(), reason="optional dks extra not installed")
def test_tat_too_shallow_is_reported_not_built() -> None:
    with pytest.raises(R.NotBuildable, match="tat at depth 4"):
        R.build("tat", 4, WIDTH, N_IN, N_OUT, _g())


def test_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        R.build("nope", 2, WIDTH, N_IN, N_OUT, _g())


# ---- probes used by E1 ------------------------------------------------------------------------
def test_segment_lag1_reports_a_linear_net_as_one_and_counts_it() -> None:
    from gradprobe.probes.segment_lag1 import segment_lag1

    lin = torch.nn.Linear(N_IN, N_OUT)
    s = segment_lag1(lin, _x(8), 4, 32, _g(6))
    assert s.lag1 == 1.0 and s.constant == 4
    deep = R.build("relu", 12, 64, N_IN, N_OUT, _g())
    s = segment_lag1(deep, _x(8), 4, 32, _g(6))
    assert s.constant == 0 and s.lag1 < 1.0


def test_segment_lag1_matches_a_finite_difference_trace() -> None:
    """The directional derivative along the chord equals the finite difference of f along it."""
    from gradprobe.probes.segment_lag1 import segment_lag1
    from gradprobe.probes.shattering import autocorrelation, segment

    torch.manual_seed(0)
    net = R.build("relu", 3, 32, N_IN, 1, _g()).double()
    x = _x(2).double()
    s = segment_lag1(net, x, 1, 200, _g(7))
    path = segment(x[0], x[1], 200)
    h = 1e-6
    d = (x[1] - x[0]) / (x[1] - x[0]).norm()
    sign = torch.sign(torch.randn(1, generator=_g(7), dtype=torch.float64))  # r = ±1 for 1 output
    with torch.no_grad():
        fd = (net(path + h * d) - net(path - h * d))[:, 0] / (2 * h) * sign
    assert s.lag1 == pytest.approx(float(autocorrelation(fd, 1)[1]), abs=1e-4)


def test_linearity_error() -> None:
    from gradprobe.probes.linearity import linearity_error

    x = _x(16)
    ll = R.build("looks_linear", 6, WIDTH, N_IN, N_OUT, _g())
    assert linearity_error(ll, x, x[0]) < 1e-5
    relu = R.build("relu", 6, WIDTH, N_IN, N_OUT, _g())
    assert linearity_error(relu, x, x[0]) > 0.05


def test_spearman_with_ties() -> None:
    import numpy as np

    from gradprobe.experiments.remedies import spearman

    rows = np.array([[1.0, 0.1], [2.0, 0.3], [2.0, 0.2], [3.0, 0.9]])
    ranks_a = np.array([0, 1.5, 1.5, 3]) - 1.5
    ranks_b = np.array([0, 2, 1, 3]) - 1.5
    exact = (ranks_a * ranks_b).sum() / math.sqrt((ranks_a**2).sum() * (ranks_b**2).sum())
    assert spearman(rows) == pytest.approx(exact)


def test_smoke_run(tmp_path) -> None:
    from gradprobe.runs.store import execute, resolve

    s = execute(resolve("remedies", "smoke", out=tmp_path, device="cpu"), quiet=True)
    assert s["status"] == "complete", s.get("error")
    assert {"remedies_heatmap.png", "remedies_vs_depth.png"} <= set(s["figures"])
    nets = s["results"]["nets"]
    for v in ("rezero", "fixup", "looks_linear"):  # linear at init: nothing shattered
        assert all(m["lag1"] == 1.0 and m["lin_err"] < 1e-4 for m in nets[f"{v}/4"]["init"])
    claims = {c["id"]: c for c in s["claims"]}
    assert set(claims) == {"remedies_keep_correlation", "correlation_predicts_trainability"}
    keep = claims["remedies_keep_correlation"]
    parts = {p["name"]: p for p in keep["parts"]}
    assert set(parts) == {"rezero", "fixup", "looks_linear", "scaled_ws"}  # every remedy judged
    lo, hi = keep["measured"]["relu_interval"]
    for name, p in parts.items():  # the difference interval: [lo_r − hi_relu, hi_r − lo_relu]
        r = nets[f"{name}/4"]["init"]
        assert p["statistic"] == pytest.approx(sum(m["lag1"] for m in r) / len(r)
                                               - keep["measured"]["relu"])
        assert p["interval"][0] <= p["statistic"] <= p["interval"][1]
        assert p["interval"][1] - p["interval"][0] >= hi - lo


def test_separation_is_positive_only_for_disjoint_intervals() -> None:
    from gradprobe.claims import Estimate, Part
    from gradprobe.experiments.remedies import separation

    def e(lo: float, hi: float) -> Estimate:
        return Estimate((lo + hi) / 2, lo, hi, "t", 3)

    base = e(0.2, 0.5)
    assert Part("x", separation(e(0.6, 0.9), base), ">", 0.0).verdict() == "holds"
    assert Part("x", separation(e(0.4, 0.9), base), ">", 0.0).verdict() == "inconclusive"
    assert Part("x", separation(e(0.0, 0.1), base), ">", 0.0).verdict() == "fails"


def test_remedy_hints_cover_every_verdict_and_name_commands_that_exist() -> None:
    from gradprobe.diagnosis.remedies import REMEDIES_FOR, what_to_try
    from gradprobe.diagnosis.verdicts import judge
    from gradprobe.experiments.registry import experiments

    kinds = {f.kind for f in judge([], [], [], None, True)}
    assert set(REMEDIES_FOR) == kinds
    names = set(experiments())
    for kind, hints in REMEDIES_FOR.items():
        assert hints and len(what_to_try(kind)) == len(hints)
        for h in hints:
            for cmd in h["command"].split(";"):
                assert cmd.split()[:2] == ["gradprobe", "run"] and cmd.split()[2] in names
    assert what_to_try("nope") == []


def test_a_fired_verdict_prints_what_to_try() -> None:
    """gp.probe's text and probe.json carry the remedies' hints under each fired verdict."""
    import gradprobe as gp

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    report = gp.probe(model, torch.nn.functional.mse_loss, (x, y))
    fired = {f.kind for f in report.findings if f.fired}
    assert "exploding" in fired
    assert "what to try:" in str(report)
    d = {f["kind"]: f for f in report.to_dict()["findings"]}
    assert d["exploding"]["what_to_try"] and not any(
        f["what_to_try"] for f in d.values() if not f["fired"])


def test_probe_does_not_call_a_net_linear_at_init_shattered() -> None:
    """Regression: a looks-linear net at init has a constant input gradient along every segment;
    its ACF is 0/0 (rounding noise), which 0.2 averaged into lag-1 ≈ 0 and fired `shattered`.
    A constant trace now counts as lag-1 = 1 (probes.shattering.lag1_of_traces)."""
    import gradprobe as gp

    g = torch.Generator().manual_seed(0)
    model = R.build("looks_linear", 16, 32, 8, 1, g).eval()
    x, y = torch.randn(16, 8, generator=g), torch.randn(16, 1, generator=g)
    report = gp.probe(model, torch.nn.functional.mse_loss, (x, y))
    fired = {f.kind for f in report.findings if f.fired}
    assert "shattered" not in fired
    assert report.shattering["lag1"] == pytest.approx(1.0)
