"""Thin convnets, CReLU and the looks-linear init (SPEC C4–C5; Balduzzi et al. 2017 §5–6)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gradprobe.experiments.convnet_shattering import (
    correlation_image,
    decode_image,
    kmeans_order,
    loss_gradients,
    mean_std_ratio,
)
from gradprobe.experiments.looks_linear import linearity_error
from gradprobe.nets.convnets import (
    MODELS,
    build_model,
    crelu_widths,
    n_params,
    shattering_net,
    stage_plan,
)
from gradprobe.nets.crelu import CReLU, delta_orthogonal_, looks_linear_
from gradprobe.nets.norm import calibrate
from gradprobe.probes.shattering import relative_effective_rank


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("c_in, c_out, stride", [(3, 8, 1), (8, 8, 1), (6, 11, 1), (16, 16, 2)])
def test_delta_orthogonal_kernel_preserves_the_norm(c_in, c_out, stride):
    w = torch.empty(c_out, c_in, 3, 3)
    delta_orthogonal_(w, gen(1))
    h = w[:, :, 1, 1]
    assert torch.count_nonzero(w) == torch.count_nonzero(h)  # only the centre tap
    torch.testing.assert_close(h.T @ h, torch.eye(c_in), atol=1e-6, rtol=0)  # orthonormal cols
    x = torch.randn(4, c_in, 9, 9, generator=gen(2))
    y = F.conv2d(x, w, stride=stride, padding=1)
    if stride == 1:  # every pixel's channel vector keeps its length
        torch.testing.assert_close(y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))
    else:  # a strided delta kernel subsamples, then preserves each kept pixel
        torch.testing.assert_close(y.norm(dim=1), x[:, :, ::2, ::2].norm(dim=1))


def test_mirrored_weights_make_crelu_linear():
    w = torch.empty(5, 8, 3, 3)
    looks_linear_(w, gen(0))
    torch.testing.assert_close(w[:, :4], -w[:, 4:])
    x = torch.randn(2, 4, 6, 6, generator=gen(1))
    y = F.conv2d(CReLU()(x), w, padding=1)
    torch.testing.assert_close(y, F.conv2d(x, w[:, :4], padding=1), atol=1e-6, rtol=1e-6)
    fc = torch.empty(10, 12)
    looks_linear_(fc, gen(2))
    v = torch.randn(3, 6, generator=gen(3))
    torch.testing.assert_close(torch.cat([v.relu(), (-v).relu()], 1) @ fc.T, v @ fc[:, :6].T,
                               atol=1e-6, rtol=1e-6)


def test_stage_plan_and_parameter_parity():
    plan = stage_plan(52, (8, 16, 32, 64))
    assert len(plan) + 2 == 52  # first conv + plan + FC
    assert [s for _, s in plan].count(2) == 3
    assert crelu_widths((8, 16, 32, 64)) == (6, 11, 23, 45)  # SPEC C5
    with pytest.raises(ValueError):
        stage_plan(11, (8, 16, 32, 64))
    relu = n_params(build_model("relu", 52, (1, 16, 16)))
    for name in MODELS:
        m = build_model(name, 52, (1, 16, 16), generator=gen(0))
        assert abs(n_params(m) / relu - 1) < 0.01, name  # parameter parity within 1%
        convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
        assert len(convs) + 1 == 52
        assert m(torch.randn(3, 1, 16, 16, generator=gen(1))).shape == (3, 10)
    assert build_model("resnet", 12, (3, 32, 32))(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("depth", [10, 52])
def test_ll_net_is_linear_at_init_and_he_relu_is_not(depth):
    """f(x) = A·x with A the Jacobian at ONE reference input: true for the LL net of any depth,
    false for a He ReLU net of the same shape (whose f(x) = J(x)·x holds only per input)."""
    x = torch.randn(16, 1, 16, 16, generator=gen(5))
    x_ref = torch.randn(1, 16, 16, generator=gen(6))
    for name in ("crelu_ll", "prelu_ll"):
        ll = build_model(name, depth, (1, 16, 16), generator=gen(depth)).eval()
        assert linearity_error(ll, x, x_ref) <= 1e-5, name
    relu = build_model("relu", depth, (1, 16, 16), generator=gen(depth)).eval()
    assert linearity_error(relu, x, x_ref) > 0.1
    # ... though the He ReLU net is positively homogeneous: f(x) = J(x)·x per input
    jx = torch.autograd.functional.jacobian(lambda z: relu(z.unsqueeze(0))[0], x[0])
    torch.testing.assert_close(jx.reshape(10, -1) @ x[0].flatten(), relu(x[:1])[0],
                               atol=1e-5, rtol=1e-4)


def test_ll_net_stops_being_linear_after_one_step():
    g = gen(7)
    m = build_model("crelu_ll", 12, (1, 16, 16), generator=g)
    x = torch.randn(32, 1, 16, 16, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    x_ref = x[0]
    assert linearity_error(m.eval(), x, x_ref, affine=True) <= 1e-5
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    m.train()
    F.cross_entropy(m(x), y).backward()
    opt.step()
    assert linearity_error(m.eval(), x, x_ref, affine=True) > 1e-3


def test_per_sample_input_gradients_match_a_loop():
    """One backward of the summed loss with frozen (detached) BN statistics equals each sample's
    own gradient taken with those statistics fixed."""
    g = gen(8)
    x = torch.randn(12, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (12,), generator=g)
    for arch in ("feedforward", "resnet"):
        m = shattering_net(arch, 4, (1, 8, 8), width=4, generator=gen(9))
        fast = loss_gradients(m, x, y)
        calibrate(m, x)  # the same statistics, now stored
        for i in (0, 5, 11):
            xi = x[i:i + 1].clone().requires_grad_(True)
            F.cross_entropy(m(xi), y[i:i + 1]).backward()
            torch.testing.assert_close(fast[i:i + 1], xi.grad, atol=1e-6, rtol=1e-5)


def test_gradient_statistics_against_closed_forms():
    z = torch.randn(256, 400, generator=gen(10))
    floor = math.sqrt(2 / math.pi) / math.sqrt(256)
    assert abs(mean_std_ratio(z) / floor - 1) < 0.05  # pure noise: E|mean|/σ = sqrt(2/π/n)
    assert abs(mean_std_ratio(z + 10.0) - 10) < 0.5  # a shared direction: |mean|/σ = 10
    assert abs(relative_effective_rank(z, generator=gen(11)) - 1) < 0.1
    rank1 = torch.randn(256, 1, generator=gen(12)) * torch.randn(1, 400, generator=gen(13))
    assert relative_effective_rank(rank1, generator=gen(11)) < 0.05


def test_kmeans_order_groups_clusters():
    g = gen(14)
    centres = torch.randn(3, 50, generator=g) * 5
    labels = torch.randint(0, 3, (60,), generator=g)
    pts = centres[labels] + 0.1 * torch.randn(60, 50, generator=g)
    order, km = kmeans_order(pts, 3, seed=0)
    assert sorted(order) == list(range(60))
    seq = [int(labels[i]) for i in order]
    assert sum(a != b for a, b in zip(seq, seq[1:])) == 2  # three contiguous runs


def test_correlation_image_encoding_round_trips():
    g = torch.randn(20, 3, 4, 4, generator=gen(15))
    order = torch.arange(19, -1, -1)
    rows = correlation_image(g, order, 10)
    img = torch.tensor(decode_image(rows))
    assert img.shape == (10, 10) and torch.allclose(img.diagonal(), torch.ones(10), atol=1 / 255)
    flat = g.reshape(20, -1).double()
    flat = flat - flat.mean(0)
    sel = order[torch.linspace(0, 19, 10).round().long()]
    f = flat[sel] / flat[sel].norm(dim=1, keepdim=True)
    ref = (f @ f.T).abs().float()
    assert torch.allclose(img, ref, atol=0.5 / 255 + 1e-6)
