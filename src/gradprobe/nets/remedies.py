"""Remedies for deep nets that will not train, as fully connected nets of one shape (SPEC E1).

Every variant maps n_in inputs to n_out logits through `depth` hidden nonlinear layers (for the
residual variants: `depth` residual branches, Fixup: depth // 2 two-layer branches) of `width`
units. Residual variants start with a linear embedding x_0 = W_0 x + b_0 (LeCun init), so with a
zero-initialised branch gate the whole net is the linear map readout(embed(x)) at init.

    relu         plain ReLU MLP, He init (He et al. 2015)
    relu_bn      the same with batch norm before every ReLU (Ioffe & Szegedy 2015)
    resnet       x_l = x_{l−1} + β·W_l ρ(BN(x_{l−1})), β = 0.1 (Balduzzi et al. 2017; SPEC C1)
    rezero       x_l = x_{l−1} + α_l·W_l ρ(BN(x_{l−1})), α_l learned, α_l = 0 at init
                 (Bachlechner et al. 2020, "ReZero is all you need", Eq. 3)
    skipinit     x_l = x_{l−1} + α_l·W_l ρ(x_{l−1}), α_l = 0 at init, no normalisation
                 (De & Smith 2020, "Batch normalization biases residual blocks towards the
                 identity function", §4)
    fixup        x_l = x_{l−1} + s_l·(W_l² (ρ(W_l¹(x_{l−1} + a_l¹) + a_l²) + a_l³)) + a_l⁴, no
                 normalisation; W_l² = 0, W_l¹ He-init scaled by B^(−1/(2m−2)) = B^(−1/2) for B
                 branches of m = 2 layers; scalar biases a (0) and multipliers s (1); readout 0
                 (Zhang et al. 2019, "Fixup initialization", §3, rules 1–3)
    looks_linear CReLU with mirrored orthogonal weights [W, −W]: exactly linear at init
                 (Balduzzi et al. 2017, §6; nets/crelu.py)
    orthogonal   ReLU MLP with Haar-orthogonal weights of gain √2 (Saxe et al. 2014; the
                 fully connected case of delta-orthogonal, Xiao et al. 2018)
    orthogonal_tanh  tanh MLP with orthogonal weights of gain 1 and zero biases: the critical
                 point χ₁ = 1 with dynamical isometry (Pennington et al. 2017; Xiao et al. 2018)
    dks, tat     the `dks` package's transformed activations (Martens et al. 2021, DKS: tanh
                 with ζ = 1.5; Zhang et al. 2022, TAT: leaky ReLU with η = 0.9), SUO weights,
                 zero biases, inputs rescaled to q = ‖x‖²/n = 1 (the DKS data preprocessing)
    scaled_ws    NF-ResNet: x_l = x_{l−1} + α·Ŵ_l γρ(x_{l−1}/β_l), α = 0.2, β_l = √(1 + (l−1)α²),
                 γ = √(2/(1 − 1/π)), Ŵ = g·(W − mean)/(std·√fan_in) per output (scaled weight
                 standardisation; Brock et al. 2021, "Characterizing signal propagation", §4)

Batch norm is FrozenNorm (nets/norm.py): `for_training` makes it ordinary train-mode BN,
`for_probing` calibrates it on a batch and freezes it, so probes see independent samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor, nn

from gradprobe.nets.crelu import CReLU, looks_linear_
from gradprobe.nets.init import he_normal_, lecun_normal_, orthogonal_
from gradprobe.nets.mlp import MLP
from gradprobe.nets.norm import FrozenNorm, calibrate, norm_layer, unfreeze
from gradprobe.nets.resnet import ResNet

VARIANTS = ("relu", "relu_bn", "resnet", "rezero", "skipinit", "fixup", "looks_linear",
            "orthogonal", "orthogonal_tanh", "dks", "tat", "scaled_ws")
NEEDS_DKS = ("dks", "tat")
RESIDUAL = ("resnet", "rezero", "skipinit", "fixup", "scaled_ws")
NF_GAMMA_RELU = math.sqrt(2.0 / (1.0 - 1.0 / math.pi))  # Brock et al. 2021a, Appendix D


class NotBuildable(ValueError):
    """The variant cannot be built at this size (e.g. TAT's target unreachable at this depth)."""


def dks_available() -> bool:
    """True when the optional `dks` package (and absl-py, which it imports) is installed."""
    try:
        import dks.pytorch  # noqa: F401
    except ImportError:
        return False
    return True


class GatedBlock(nn.Module):
    """x ↦ x + α·W ρ(N(x)): ReZero (N = BN) and SkipInit (N = identity); α a learned scalar."""

    def __init__(self, width: int, norm: str, g: torch.Generator, alpha: float = 0.0) -> None:
        super().__init__()
        self.norm = norm_layer(norm, width)
        self.act = nn.ReLU()
        self.linear = nn.Linear(width, width, bias=False)
        he_normal_(self.linear.weight, g)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.alpha * self.linear(self.act(self.norm(x)))


class FixupBlock(nn.Module):
    """x ↦ x + s·(W² (ρ(W¹(x + a¹) + a²) + a³)) + a⁴ (Zhang et al. 2019, Fig. 1 right)."""

    def __init__(self, width: int, branches: int, g: torch.Generator) -> None:
        super().__init__()
        self.linear1 = nn.Linear(width, width, bias=False)
        self.linear2 = nn.Linear(width, width, bias=False)
        he_normal_(self.linear1.weight, g)
        with torch.no_grad():
            self.linear1.weight.mul_(branches ** (-1.0 / (2 * 2 - 2)))  # L^(−1/(2m−2)), m = 2
            self.linear2.weight.zero_()
        self.bias = nn.Parameter(torch.zeros(4))
        self.scale = nn.Parameter(torch.ones(()))
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        a = self.bias
        h = self.act(self.linear1(x + a[0]) + a[1])
        return x + self.scale * self.linear2(h + a[2]) + a[3]


class WSLinear(nn.Linear):
    """Linear with scaled weight standardisation: Ŵ = gain·(W − μ)/(σ·√fan_in), μ, σ per output
    row (Brock et al. 2021a, Eq. 3; Qiao et al. 2019), so Ŵ x keeps the variance of x."""

    def __init__(self, n_in: int, n_out: int, g: torch.Generator, eps: float = 1e-4) -> None:
        super().__init__(n_in, n_out, bias=True)
        he_normal_(self.weight, g)
        with torch.no_grad():
            self.bias.zero_()
        self.gain = nn.Parameter(torch.ones(n_out, 1))
        self.eps = eps

    def standardized_weight(self) -> Tensor:
        w = self.weight
        mean = w.mean(dim=1, keepdim=True)
        var = w.var(dim=1, unbiased=False, keepdim=True)
        return self.gain * (w - mean) / torch.sqrt(var * w.shape[1] + self.eps)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.standardized_weight(), self.bias)


class NFBlock(nn.Module):
    """x ↦ x + α·Ŵ γρ(x/β): a normaliser-free residual block (Brock et al. 2021a, §4)."""

    def __init__(self, width: int, alpha: float, beta: float, g: torch.Generator) -> None:
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)
        self.act = nn.ReLU()
        self.linear = WSLinear(width, width, g)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.alpha * self.linear(NF_GAMMA_RELU * self.act(x / self.beta))


class Residual(nn.Module):
    """embed (Linear, LeCun init, zero bias) → blocks → readout (Linear)."""

    def __init__(self, n_in: int, n_out: int, width: int, blocks: list[nn.Module],
                 g: torch.Generator, zero_readout: bool = False) -> None:
        super().__init__()
        self.embed = nn.Linear(n_in, width)
        lecun_normal_(self.embed.weight, g)
        self.blocks = nn.Sequential(*blocks)
        self.readout = nn.Linear(width, n_out)
        lecun_normal_(self.readout.weight, g)
        with torch.no_grad():
            self.embed.bias.zero_()
            self.readout.bias.zero_()
            if zero_readout:
                self.readout.weight.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.blocks(self.embed(x)))


class QNorm(nn.Module):
    """x ↦ x·√(n/‖x‖²): every input gets q = ‖x‖²/n = 1 (DKS's per-example normalisation)."""

    def forward(self, x: Tensor) -> Tensor:
        q = x.pow(2).mean(dim=1, keepdim=True)
        return x / torch.sqrt(q + 1e-12)


class Elementwise(nn.Module):
    """An elementwise function as a module (for the dks-transformed activations)."""

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str) -> None:
        super().__init__()
        self.fn, self.name = fn, name

    def extra_repr(self) -> str:
        return self.name

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


@lru_cache(maxsize=32)
def _dks_activation(method: str, depth: int) -> Callable[[Tensor], Tensor]:
    """DKS-transformed tanh (ζ = c_slope_1_target = 1.5) or TAT-transformed leaky ReLU
    (η = c_val_0_target = 0.9) for a chain of `depth` nonlinear layers, whose subnetwork
    maximising function is r applied depth times (Zhang et al. 2022, App. A). Cached: the
    package's root search takes seconds."""
    from dks.pytorch.activation_transform import get_transformed_activations

    def subnet_max(x: float, r_fn: Callable[[float], float]) -> float:
        for _ in range(depth):
            x = r_fn(x)
        return x

    name = "tanh" if method == "dks" else "leaky_relu"
    kw = ({"method": "DKS", "dks_params": {"c_slope_1_target": 1.5}} if method == "dks" else
          {"method": "TAT", "tat_params": {"c_val_0_target": 0.9}})
    with warnings.catch_warnings():  # the package's root search overflows np.cosh harmlessly
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        try:
            acts = get_transformed_activations([name], subnet_max_func=subnet_max, **kw)
        except ValueError as e:  # e.g. TAT's C(0) = 0.9 needs more than ~10 layers
            raise NotBuildable(f"{method} at depth {depth}: {str(e).split('.')[0]}") from e
    return acts[name]


def _dks_net(method: str, n_in: int, n_out: int, width: int, depth: int,
             g: torch.Generator) -> nn.Module:
    fn = _dks_activation(method, depth)
    name = "DKS tanh" if method == "dks" else "TAT leaky_relu"
    sizes = [n_in] + [width] * depth + [n_out]
    layers: list[nn.Module] = [QNorm()]
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        # SUO: orthogonal rescaled by max(√(out/in), 1), which preserves q (DKS §"Parameter
        # distributions"); zero biases.
        orthogonal_(lin.weight, g, gain=max(math.sqrt(sizes[i + 1] / sizes[i]), 1.0))
        with torch.no_grad():
            lin.bias.zero_()
        layers.append(lin)
        if i < depth:
            layers.append(Elementwise(fn, name))
    return nn.Sequential(*layers)


def looks_linear_net(n_in: int, n_out: int, width: int, depth: int,
                     g: torch.Generator) -> nn.Sequential:
    """Linear(n_in→w, orthogonal) → (CReLU → LL Linear(2w→w)) × (depth−1) → CReLU → LL
    Linear(2w→n_out): depth CReLU layers, all biases 0, f(x) = A x exactly at init."""
    first = nn.Linear(n_in, width)
    orthogonal_(first.weight, g)
    layers: list[nn.Module] = [first]
    for i in range(depth):
        lin = nn.Linear(2 * width, n_out if i == depth - 1 else width)
        looks_linear_(lin.weight, g)
        layers += [CReLU(), lin]
    for m in layers:
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.bias.zero_()
    return nn.Sequential(*layers)


def build(variant: str, depth: int, width: int, n_in: int, n_out: int,
          generator: torch.Generator, beta: float = 0.1, nf_alpha: float = 0.2,
          fixup_zero_readout: bool = True) -> nn.Module:
    """One net of `variant` (see the module docstring); float32, on the CPU."""
    g = generator
    if depth < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")
    sizes = [n_in] + [width] * depth + [n_out]
    if variant == "relu":
        return MLP(sizes, "relu", init="he", generator=g)
    if variant == "relu_bn":
        return MLP(sizes, "relu", norm="bn", init="he", generator=g)
    if variant == "orthogonal":
        return MLP(sizes, "relu", init="orthogonal", generator=g)
    if variant == "orthogonal_tanh":
        net = MLP(sizes, "tanh", init="orthogonal", generator=g)
        for m in net:
            if isinstance(m, nn.Linear):
                orthogonal_(m.weight, g, gain=1.0)
        return net
    if variant == "resnet":
        return ResNet(width, depth, beta=beta, norm="bn", in_features=n_in, out_features=n_out,
                      embed_bias_std=0.0, embed_activation=None, init="he", generator=g)
    if variant in ("rezero", "skipinit"):
        norm = "bn" if variant == "rezero" else "none"
        return Residual(n_in, n_out, width, [GatedBlock(width, norm, g) for _ in range(depth)], g)
    if variant == "fixup":
        b = max(1, depth // 2)
        return Residual(n_in, n_out, width, [FixupBlock(width, b, g) for _ in range(b)], g,
                        zero_readout=fixup_zero_readout)
    if variant == "scaled_ws":
        blocks = [NFBlock(width, nf_alpha, math.sqrt(1.0 + l * nf_alpha**2), g)
                  for l in range(depth)]
        return Residual(n_in, n_out, width, blocks, g)
    if variant == "looks_linear":
        return looks_linear_net(n_in, n_out, width, depth, g)
    if variant in NEEDS_DKS:
        if not dks_available():
            raise ImportError("needs the optional `dks` extra: pip install 'gradprobe[dks]'")
        return _dks_net(variant, n_in, n_out, width, depth, g)
    raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def for_training(model: nn.Module) -> nn.Module:
    """Batch norm as in ordinary training: batch statistics, gradients through them."""
    unfreeze(model)
    for m in model.modules():
        if isinstance(m, FrozenNorm):
            m.grad_through_stats = True
    return model


@torch.no_grad()
def for_probing(model: nn.Module, batch: Tensor) -> nn.Module:
    """Batch norm statistics computed once over `batch` and frozen: samples independent."""
    for m in model.modules():
        if isinstance(m, FrozenNorm):
            m.grad_through_stats = False
    return calibrate(model, batch)


def hidden_activations(model: nn.Module) -> list[nn.Module]:
    """The hidden nonlinearity modules in call order (for co-activation hooks)."""
    kinds = (nn.ReLU, nn.Tanh, CReLU, Elementwise)
    return [m for m in model.modules() if isinstance(m, kinds)]
