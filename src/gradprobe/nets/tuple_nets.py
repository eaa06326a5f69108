"""N1, N2 and the two losses of the tuple experiment (Shalev-Shwartz et al. 2017, §3.1; SPEC A4).

N1 (one per experiment, shared by the k images of a tuple): conv 5×5, 16 ch, same padding →
max-pool 2 → conv 5×5, 16 ch, same padding → max-pool 2 → FC 50 ReLU → FC 100 ReLU → FC 1, the
image's "score". The authors' code has no nonlinearity after the convolutions; that is the
default here (`conv_relu=True` adds one).
N2: sigmoid(scores) as a k-vector → FC 100 ReLU → FC 1, the tuple's output.
Every weight is truncated normal with std 1/sqrt(fan_in), every bias 0 (SPEC A4). The authors'
code instead gives each conv kernel std 1/sqrt(in_channels) — and, through a reshape, 1/sqrt(28)
for the first (it reads the image width as the channel count) — so its second conv starts 5×
larger than fan-in: `init="code"` reproduces that (the FC layers are the same in both).
The two losses are in `gradprobe.training.tuple_losses`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gradprobe.nets.init import fan_in, trunc_normal_fan_in_


def init_trunc_normal_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Truncated normal 1/sqrt(fan_in) weights and zero biases, in module order (seeded)."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            trunc_normal_fan_in_(m.weight, generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class N1(nn.Module):
    """Image → score. Input (n, 1, 28, 28); output (n,)."""

    def __init__(self, conv_relu: bool = False, channels: int = 16) -> None:
        super().__init__()
        act = nn.ReLU() if conv_relu else nn.Identity()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 5, padding=2), act, nn.MaxPool2d(2),  # (n, 16, 14, 14)
            nn.Conv2d(channels, channels, 5, padding=2), act, nn.MaxPool2d(2),  # (n, 16, 7, 7)
        )
        self.fc1 = nn.Linear(channels * 7 * 7, 50)
        self.fc2 = nn.Linear(50, 100)
        self.score = nn.Linear(100, 1)  # N1's last layer: the SNR experiment's parameters

    def penultimate(self, x: Tensor) -> Tensor:
        """The 100 features the score layer reads: (n, 1, 28, 28) → (n, 100)."""
        h = self.features(x).flatten(1)
        h = torch.relu(self.fc1(h))
        return torch.relu(self.fc2(h))

    def forward(self, x: Tensor) -> Tensor:
        return self.score(self.penultimate(x)).squeeze(-1)


class N2(nn.Module):
    """Scores (b, k) → tuple output (b,): sigmoid → FC 100 ReLU → FC 1."""

    def __init__(self, k: int, hidden: int = 100) -> None:
        super().__init__()
        self.fc1 = nn.Linear(k, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, scores: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.fc1(torch.sigmoid(scores)))).squeeze(-1)


class TupleNet(nn.Module):
    """N2 ∘ (N1 on each image). Input (b, k, 28, 28); returns (output (b,), scores (b, k)).

    The b·k images go through N1 as one batch (the convolutions dominate the cost).
    """

    def __init__(self, k: int, conv_relu: bool = False) -> None:
        super().__init__()
        self.k = k
        self.n1 = N1(conv_relu=conv_relu)
        self.n2 = N2(k)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        b, k = images.shape[:2]
        scores = self.n1(images.reshape(b * k, 1, *images.shape[2:])).reshape(b, k)
        return self.n2(scores), scores


class ScoreHead(nn.Module):
    """N1's last layer followed by N2, on N1's penultimate features: (b, k, 100) → (out, scores).

    The gradient with respect to the score layer depends on the convolutions only through these
    features, so they can be computed once (no grad) and shared by both losses.
    """

    def __init__(self, net: TupleNet) -> None:
        super().__init__()
        self.score = net.n1.score
        self.n2 = net.n2

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.score(h).squeeze(-1)  # (b, k)
        return self.n2(scores), scores


def make_tuple_net(k: int, generator: torch.Generator, conv_relu: bool = False,
                   device: torch.device | str = "cpu", init: str = "fan_in") -> TupleNet:
    """A TupleNet for k-tuples, initialised from `generator` (on CPU, then moved).

    init: "fan_in" (SPEC: std 1/sqrt(fan_in) everywhere) or "code" (the authors' conv stds).
    """
    if init not in ("fan_in", "code"):
        raise ValueError(f"init must be 'fan_in' or 'code', got {init!r}")
    net = TupleNet(k, conv_relu=conv_relu)
    init_trunc_normal_(net, generator)
    if init == "code":
        conv1, conv2 = net.n1.features[0], net.n1.features[3]
        with torch.no_grad():  # rescale the truncated normals to the code's stds
            conv1.weight.mul_(math.sqrt(fan_in(conv1.weight) / 28))
            conv2.weight.mul_(math.sqrt(fan_in(conv2.weight) / conv2.in_channels))
    return net.to(device)
