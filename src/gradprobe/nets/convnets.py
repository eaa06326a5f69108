"""Thin convnets and resnets for the image experiments (Balduzzi et al. 2017, §5 Fig. 5, §6 Fig. 6),
and the bottleneck nets of our reading of §5's paper-scale architecture (`BottleneckNet`).

Plain (feed-forward) nets: a stack of conv 3×3 → norm → activation modules, then flatten → one
fully connected layer. Resnets (pre-activation, He et al. 2016): a stem conv, then blocks
x ↦ shortcut(x) + β · conv(act(norm(conv(act(norm(x)))))) — one skip per two convs, β-rescaled
(β = 1 is He's resnet, β = 0.1 the paper's Fig. 5) — then norm → act → flatten → FC. A block
that halves the resolution uses stride 2 in its first conv and a parameter-free shortcut
(subsample, zero-pad the new channels; He et al. 2016's option A).

Norms: 'bn' is torch's BatchNorm2d (train mode: batch statistics with their gradient; eval mode:
running statistics — at initialisation x/sqrt(1 + eps), a linear map); 'frozen' is FrozenNorm
(batch statistics, detached), for per-sample input gradients in one backward (SPEC C4).

Activations: 'relu', 'crelu' (doubles the channels; the next layer reads 2C), 'prelu' (one slope
per channel, a = 1 at init), 'identity' (the linear baseline). Inits: 'he' N(0, 2/fan_in) for
every conv, N(0, 1/fan_in) for the FC; 'll' looks-linear: delta-orthogonal convs, mirrored
[W, −W] after CReLUs, orthogonal FC (nets/crelu.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradprobe.nets.crelu import CReLU, delta_orthogonal_, looks_linear_, prelu_ll
from gradprobe.nets.init import he_normal_, lecun_normal_
from gradprobe.nets.norm import FrozenNorm

ACTS = ("relu", "crelu", "prelu", "identity")
NORMS = ("bn", "frozen", "none")
# C5's model zoo: name → (activation, init, residual)
MODELS = {
    "crelu_ll": ("crelu", "ll", False),
    "crelu": ("crelu", "he", False),
    "resnet": ("relu", "he", True),
    "relu": ("relu", "he", False),
    "linear": ("identity", "he", False),
    "prelu_ll": ("prelu", "ll", False),
}


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(c)
    if kind == "frozen":
        return FrozenNorm(c, "bn")
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def _act(kind: str, c: int) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "crelu":
        return CReLU()
    if kind == "prelu":
        return prelu_ll(c)
    if kind == "identity":
        return nn.Identity()
    raise ValueError(f"unknown activation {kind!r}; choose one of {', '.join(ACTS)}")


def _conv(c_in: int, c_out: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class ConvModule(nn.Module):
    """conv 3×3 (stride s, no bias) → norm → activation."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, act: str) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out, stride)
        self.norm = _norm(norm, c_out)
        self.act = _act(act, c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class PreActBlock(nn.Module):
    """x ↦ shortcut(x) + β · conv2(act(norm2(conv1(act(norm1(x)))))), conv1 has the stride."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, act: str,
                 beta: float) -> None:
        super().__init__()
        self.beta = float(beta)
        self.stride, self.pad = stride, c_out - c_in
        self.norm1, self.act1 = _norm(norm, c_in), _act(act, c_in)
        self.conv1 = _conv(c_in, c_out, stride)
        self.norm2, self.act2 = _norm(norm, c_out), _act(act, c_out)
        self.conv2 = _conv(c_out, c_out, 1)

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.act1(self.norm1(x)))
        h = self.conv2(self.act2(self.norm2(h)))
        return self.shortcut(x) + self.beta * h


def stage_plan(depth: int, widths: Sequence[int]) -> list[tuple[int, int]]:
    """(channels, stride) for the D − 2 convs after the first one of a depth-D thin net.

    D counts weight layers (convs + the FC): the first conv, then (D − 2)/2 pairs of convs
    spread as evenly as possible over the stages (earlier stages take the remainder); the
    first conv of every stage after the first has stride 2 and the stage's width.
    """
    if depth < 2 * len(widths) + 2 or depth % 2:
        raise ValueError(f"depth must be even and ≥ {2 * len(widths) + 2} for "
                         f"{len(widths)} stages, got {depth}")
    pairs = (depth - 2) // 2
    n = len(widths)
    per = [pairs // n + (1 if i < pairs % n else 0) for i in range(n)]
    plan = []
    for i, (w, p) in enumerate(zip(widths, per)):
        for j in range(2 * p):
            plan.append((w, 2 if (i > 0 and j == 0) else 1))
    return plan


def crelu_widths(widths: Sequence[int]) -> tuple[int, ...]:
    """CReLU filter counts for parameter parity: round(w / sqrt 2) (8-16-32-64 → 6-11-23-45)."""
    return tuple(max(1, round(w / math.sqrt(2))) for w in widths)


class ThinConvNet(nn.Module):
    """A plain or residual thin convnet on (n, C, H, W) images → (n, classes) logits.

    first: channels of the first conv; plan: (channels, stride) of each later conv (plain: one
    ConvModule each; residual: consecutive pairs form one PreActBlock, so len(plan) must be
    even and the two convs of a pair share the channels). image: input (C, H, W).
    """

    def __init__(self, image: Sequence[int], classes: int, first: int,
                 plan: Sequence[tuple[int, int]], *, act: str = "relu", norm: str = "bn",
                 residual: bool = False, beta: float = 1.0, init: str = "he",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if init not in ("he", "ll"):
            raise ValueError(f"unknown init {init!r}; choose he or ll")
        if init == "ll" and (residual or act not in ("crelu", "prelu", "identity")):
            raise ValueError("the looks-linear init needs a plain net with crelu, prelu "
                             "or identity activations")
        if residual and act == "crelu":
            raise ValueError("residual nets here use relu / prelu / identity, not crelu")
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        c_in, h, w = image
        self.residual, self.act_kind, self.init_kind = residual, act, init
        mult = 2 if act == "crelu" else 1
        layers: list[nn.Module] = []
        if residual:
            if len(plan) % 2:
                raise ValueError("a residual plan needs pairs of convs")
            layers.append(_conv(c_in, first, 1))
            c = first
            for k in range(0, len(plan), 2):
                (c1, s1), (c2, s2) = plan[k], plan[k + 1]
                if c1 != c2 or s2 != 1:
                    raise ValueError("the two convs of a block share channels; stride on the first")
                layers.append(PreActBlock(c, c1, s1, norm, act, beta))
                c = c1
            layers += [_norm(norm, c), _act(act, c)]
        else:
            layers.append(ConvModule(c_in, first, 1, norm, act))
            c = first
            for c_out, s in plan:
                layers.append(ConvModule(c * mult, c_out, s, norm, act))
                c = c_out
        self.body = nn.Sequential(*layers)
        for _, s in ([(first, 1)] + list(plan)):
            h, w = (h + 1) // s if s > 1 else h, (w + 1) // s if s > 1 else w
        self.features = c * mult * h * w
        self.fc = nn.Linear(self.features, classes)
        self._init(g)

    @torch.no_grad()
    def _init(self, g: torch.Generator) -> None:
        convs = [m for m in self.body.modules() if isinstance(m, nn.Conv2d)]
        for i, conv in enumerate(convs):
            if self.init_kind == "he":
                he_normal_(conv.weight, g)
            elif self.act_kind == "crelu" and i > 0:
                looks_linear_(conv.weight, g)
            else:
                delta_orthogonal_(conv.weight, g)
        if self.init_kind == "he":
            lecun_normal_(self.fc.weight, g)
        elif self.act_kind == "crelu":
            looks_linear_(self.fc.weight, g)
        else:
            delta_orthogonal_(self.fc.weight, g)
        self.fc.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x).flatten(1))


def build_model(name: str, depth: int, image: Sequence[int], classes: int = 10,
                widths: Sequence[int] = (8, 16, 32, 64), *, norm: str = "bn",
                beta: float = 1.0, generator: torch.Generator | None = None) -> ThinConvNet:
    """One of SPEC C5's models (MODELS) with `depth` weight layers (convs + FC).

    CReLU models use crelu_widths(widths) for parameter parity with the ReLU models.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    act, init, residual = MODELS[name]
    ws = crelu_widths(widths) if act == "crelu" else tuple(widths)
    return ThinConvNet(image, classes, ws[0], stage_plan(depth, ws), act=act, norm=norm,
                       residual=residual, beta=beta, init=init, generator=generator)


class BottleneckPair(nn.Module):
    """Two pre-activation convs, C → bottleneck → C: norm → act → conv 1×1 (C → b), norm → act →
    conv 3×3 (b → C); with `residual`, x ↦ x + β·h, else x ↦ h (the same layers, no skip)."""

    def __init__(self, channels: int, bottleneck: int, norm: str, residual: bool,
                 beta: float) -> None:
        super().__init__()
        self.residual, self.beta = residual, float(beta)
        self.norm1, self.act1 = _norm(norm, channels), nn.ReLU()
        self.conv1 = nn.Conv2d(channels, bottleneck, 1, bias=False)
        self.norm2, self.act2 = _norm(norm, bottleneck), nn.ReLU()
        self.conv2 = _conv(bottleneck, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(self.act2(self.norm2(self.conv1(self.act1(self.norm1(x))))))
        return x + self.beta * h if self.residual else h


class BottleneckNet(nn.Module):
    """Our reading of Balduzzi et al. §5's paper-scale nets (see `shattering_net`).

    stem conv 3×3 (C_in → width) → depth/2 BottleneckPairs (width → bottleneck → width, stride 1)
    → norm → ReLU → global average pool → FC. Feed-forward and resnet of one depth have the same
    layers and parameter count; only the skip differs. He init for the convs, N(0, 1/fan_in)
    for the FC, zero FC bias.
    """

    def __init__(self, image: Sequence[int], classes: int, depth: int, *, width: int = 64,
                 bottleneck: int = 16, residual: bool = False, beta: float = 0.1,
                 norm: str = "frozen", generator: torch.Generator | None = None) -> None:
        super().__init__()
        if depth < 2 or depth % 2:
            raise ValueError(f"depth must be even and ≥ 2 (two convs per pair), got {depth}")
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        self.stem = _conv(image[0], width, 1)
        self.blocks = nn.Sequential(*[BottleneckPair(width, bottleneck, norm, residual, beta)
                                      for _ in range(depth // 2)])
        self.head_norm, self.head_act = _norm(norm, width), nn.ReLU()
        self.fc = nn.Linear(width, classes)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    he_normal_(m.weight, g)
            lecun_normal_(self.fc.weight, g)
            self.fc.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        h = self.head_act(self.head_norm(self.blocks(self.stem(x))))
        return self.fc(h.mean(dim=(2, 3)))


ARCHITECTURES = ("thin", "bottleneck")


def shattering_net(arch: str, depth: int, image: Sequence[int], classes: int = 10,
                   width: int = 16, *, beta: float = 0.1, norm: str = "frozen",
                   architecture: str = "thin", bottleneck: int = 16,
                   generator: torch.Generator | None = None) -> nn.Module:
    """SPEC C4's nets; `arch` is 'feedforward' or 'resnet', `depth` the convs after the input.

    architecture='thin' (the SPEC's quick-scale reference nets): constant width, 3×3 kernels,
    stride 1, He init; 'feedforward' is `depth` conv-norm-ReLU modules then FC, 'resnet' a stem
    conv, depth/2 pre-activation blocks (depth convs) with branch scale β, then norm → ReLU → FC.

    architecture='bottleneck' (paper scale): our reading of "a slight modification of the
    'bottleneck' architecture in He et al. (2016) … one skip-connection for every two
    convolutional layers" with feed-forward and resnets "of equivalent size": He et al.'s
    pre-activation bottleneck (1×1 reduce, 3×3, 1×1 expand) loses its expanding 1×1 so that a
    skip spans two convs (1×1 width → bottleneck, 3×3 bottleneck → width); width 64 and
    bottleneck 16 are the first stage of He et al.'s CIFAR bottleneck resnets; the feed-forward
    net is the same stack without the skips (BottleneckNet).
    """
    if architecture == "bottleneck":
        if arch not in ("feedforward", "resnet"):
            raise ValueError(f"unknown arch {arch!r}; choose feedforward or resnet")
        return BottleneckNet(image, classes, depth, width=width, bottleneck=bottleneck,
                             residual=arch == "resnet", beta=beta, norm=norm, generator=generator)
    if architecture != "thin":
        raise ValueError(f"unknown architecture {architecture!r}; choose thin or bottleneck")
    if arch == "feedforward":
        return ThinConvNet(image, classes, width, [(width, 1)] * (depth - 1), act="relu",
                           norm=norm, generator=generator)
    if arch == "resnet":
        if depth % 2:
            raise ValueError(f"resnet depth must be even (two convs per skip), got {depth}")
        return ThinConvNet(image, classes, width, [(width, 1)] * depth, act="relu", norm=norm,
                           residual=True, beta=beta, generator=generator)
    raise ValueError(f"unknown arch {arch!r}; choose feedforward or resnet")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
