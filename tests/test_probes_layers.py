"""Per-layer gradient norms and the product bound (probes/layers.py); the bound's closed forms are
in test_theory_vanishing.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradprobe.nets.mlp import MLP
from gradprobe.probes.layers import affine_chain, layer_gradients


def quadratic(out, y):
    return 0.5 * ((out - y) ** 2).sum(-1)


def _data(n=24, d=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64),
            torch.rand(n, k, generator=g, dtype=torch.float64))


def test_per_example_norms_match_a_loop():
    x, y = _data()
    model = MLP([6, 5, 4, 3], "tanh", out_activation="sigmoid", init="lecun", bias_std=1.0,
                generator=torch.Generator().manual_seed(1)).double()
    lg = layer_gradients(model, quadratic, (x, y))
    assert lg.names == ("0", "2", "4")
    for i in range(x.shape[0]):
        model.zero_grad()
        quadratic(model(x[i:i + 1]), y[i:i + 1]).sum().backward()
        for j, name in enumerate(lg.names):
            lin = model.get_submodule(name)
            assert lg.bias_norms[i, j] == pytest.approx(float(lin.bias.grad.norm()), rel=1e-10)
            assert lg.weight_norms[i, j] == pytest.approx(float(lin.weight.grad.norm()), rel=1e-10)
    torch.testing.assert_close(lg.mean_bias_norms, lg.bias_norms.mean(0))


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "softplus", "leaky_relu"])
@pytest.mark.parametrize("seed", range(4))
def test_product_bound_never_violated_on_random_nets(act, seed):
    g = torch.Generator().manual_seed(seed)
    depth = 2 + seed
    sizes = [6] + [int(torch.randint(2, 9, (1,), generator=g))] * depth + [3]
    model = MLP(sizes, act, out_activation="sigmoid" if seed % 2 else None,
                init="he" if act == "relu" else "glorot", bias_std=float(seed) * 0.5,
                generator=g).double()
    x, y = _data(seed=seed)
    lg = layer_gradients(model, quadratic, (x * (1 + seed), y))
    assert lg.bound is not None and lg.weight_bound is not None
    assert (lg.bias_norms <= lg.bound * (1 + 1e-10)).all()
    assert (lg.weight_norms <= lg.weight_bound * (1 + 1e-10)).all()
    # the weight "bound" is the bias bound times ‖a^{l−1}‖, and ‖∂C/∂W‖ = ‖δ‖‖a^{l−1}‖ exactly
    ratio_b = lg.bias_norms / lg.bound
    ratio_w = lg.weight_norms / lg.weight_bound
    ok = (lg.bound > 1e-300) & (lg.weight_bound > 1e-300)  # a dead ReLU layer gives 0/0
    torch.testing.assert_close(ratio_b[ok], ratio_w[ok])


def test_bound_is_none_for_non_chains():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 2)

        def forward(self, x):
            return self.b(x + torch.relu(self.a(x)))

    x, y = _data(d=4, k=2)
    lg = layer_gradients(Skip().double(), quadratic, (x, y))
    assert lg.bound is None and lg.gamma is None
    assert lg.bias_norms.shape == (x.shape[0], 2)
    assert affine_chain(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))) is None
    chain = affine_chain(nn.Sequential(nn.Flatten(), nn.Linear(3, 3), nn.Sigmoid(), nn.Tanh(),
                                       nn.Linear(3, 1)))
    assert chain is not None and [g for _, g in chain] == [0.25, 1.0]


def test_nets_inits_and_structure():
    from gradprobe.nets.highway import HighwayNet, highway_gammas
    from gradprobe.nets.norm import FrozenNorm
    from gradprobe.nets.resnet import ResNet

    g = torch.Generator().manual_seed(0)
    m = MLP([3, 64, 64, 2], "relu", init="orthogonal", generator=g)
    w = m[2].weight.detach()
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(64), atol=1e-5, rtol=0)
    he = MLP([400, 400, 1], "relu", init="he", generator=g)[0].weight.detach()
    assert float(he.var()) == pytest.approx(2 / 400, rel=0.05)
    gl = MLP([400, 200, 1], "relu", init="glorot", generator=g)[0].weight.detach()
    assert float(gl.var()) == pytest.approx(2 / 600, rel=0.05)
    # norm_from=2: the first hidden layer is not normalised
    c = MLP([1, 8, 8, 8, 1], "relu", norm="center", norm_from=2, generator=g)
    kinds = [type(x).__name__ for x in c]
    assert kinds == ["Linear", "ReLU", "Linear", "FrozenNorm", "ReLU", "Linear", "FrozenNorm",
                     "ReLU", "Linear"]
    g1, g2 = highway_gammas(10)
    assert g1**2 == pytest.approx(0.9) and g1**2 + g2**2 == pytest.approx(1.0)
    hw = HighwayNet(8, 10, norm="center", generator=g)
    assert hw.blocks[0].alpha == pytest.approx(g1) and hw.blocks[0].beta == pytest.approx(g2)
    r = ResNet(8, 3, beta=0.1, norm="bn", in_features=1, out_features=1, generator=g,
               embed_activation=None)
    assert isinstance(r.embed[1], nn.Identity) and len(r.blocks) == 3
    assert sum(isinstance(x, FrozenNorm) for x in r.modules()) == 3
    assert r(torch.randn(5, 1, generator=g)).shape == (5, 1)
