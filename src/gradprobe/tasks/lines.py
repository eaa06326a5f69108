"""Line images and k-tuples of them (Shalev-Shwartz et al. 2017, §3.1, Fig. 2; SPEC A4).

One image is 28×28 and binary: zero but for a straight line of length l ~ U[5, 23] centred at
c ~ U([0, 27]²) at angle θ ~ U[0, π], its points rounded to the pixel grid and clipped at the
border. Its label is y = +1 when θ < π/2 (the line slopes upwards on screen) and −1 otherwise. A
k-tuple is k i.i.d. images labelled by the parity ∏ y.

The original code drew 500,000 tuples per k into files with a Python loop over pixels; here a
whole batch is drawn at once on the device: every line is `POINTS` evenly spaced points
(spacing ≤ 0.5 pixel, so no gaps), rounded with floor(v + ½) and written with one indexed store.
`draw_lines_reference` is the per-pixel Python loop, kept as the ground truth for tests and as
the benchmark's baseline.

Coordinates: column = c_x + t·cos θ, row = c_y − t·sin θ for t ∈ [−l/2, l/2] (rows grow
downwards, so θ < π/2 goes up to the right on screen).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

SIZE = 28  # image side, pixels (paper §3.1)
MIN_LEN, MAX_LEN = 5.0, 23.0  # line length range, pixels: U[5, 28 − 5] (paper §3.1)
POINTS = 47  # points per line: spacing l/(POINTS−1) ≤ 0.5 pixel for l ≤ 23


@dataclass(frozen=True)
class LineParams:
    """Parameters of n lines (float64, on the generator's device).

    theta: (n,) angle in [0, π]; length: (n,) pixels; cx, cy: (n,) centre column and row.
    """

    theta: Tensor
    length: Tensor
    cx: Tensor
    cy: Tensor

    @property
    def labels(self) -> Tensor:
        """(n,) float32 ±1: +1 when θ < π/2."""
        return torch.where(self.theta < math.pi / 2, 1.0, -1.0).to(torch.float32)


def sample_params(n: int, generator: torch.Generator) -> LineParams:
    """Draw n lines' (θ, l, centre) with `generator`, on the generator's device."""
    dev = generator.device
    u = torch.rand(4, n, generator=generator, device=dev, dtype=torch.float64)
    return LineParams(
        theta=u[0] * math.pi,
        length=MIN_LEN + (MAX_LEN - MIN_LEN) * u[1],
        cx=u[2] * (SIZE - 1),
        cy=u[3] * (SIZE - 1),
    )


def draw_lines(p: LineParams) -> Tensor:
    """Render lines into (n, 1, 28, 28) float32 binary images, vectorised (one index_put)."""
    n = p.theta.shape[0]
    dev = p.theta.device
    frac = torch.linspace(-0.5, 0.5, POINTS, device=dev, dtype=torch.float64)  # (P,)
    dx = (p.length * torch.cos(p.theta))[:, None]  # (n, 1) column extent, pixels
    dy = (p.length * torch.sin(p.theta))[:, None]  # (n, 1) row extent (rows grow downwards)
    col = torch.floor((p.cx + 0.5)[:, None] + dx * frac)  # (n, P) rounded: floor(v + ½)
    row = torch.floor((p.cy + 0.5)[:, None] - dy * frac)
    inside = (col >= 0) & (col < SIZE) & (row >= 0) & (row < SIZE)  # clip at the border
    flat = (row * SIZE + col).long() + (torch.arange(n, device=dev) * (SIZE * SIZE))[:, None]
    flat = torch.where(inside, flat, n * SIZE * SIZE)  # outside → one spare slot at the end
    buf = torch.zeros(n * SIZE * SIZE + 1, device=dev)
    buf[flat.view(-1)] = 1.0
    return buf[:-1].view(n, 1, SIZE, SIZE)


def draw_lines_reference(p: LineParams) -> Tensor:
    """The same images drawn point by point in plain Python (slow; tests and benchmark only)."""
    theta, length = p.theta.tolist(), p.length.tolist()
    cx, cy = p.cx.tolist(), p.cy.tolist()
    fracs = torch.linspace(-0.5, 0.5, POINTS, dtype=torch.float64).tolist()
    out = []
    for i in range(len(theta)):
        img = [[0.0] * SIZE for _ in range(SIZE)]
        dx, dy = length[i] * math.cos(theta[i]), length[i] * math.sin(theta[i])
        for f in fracs:
            x = math.floor((cx[i] + 0.5) + dx * f)
            y = math.floor((cy[i] + 0.5) - dy * f)
            if 0 <= x < SIZE and 0 <= y < SIZE:
                img[y][x] = 1.0
        out.append(img)
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 1, SIZE, SIZE)


def sample_lines(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n images (n, 1, 28, 28) and their labels (n,) ±1, on the generator's device."""
    p = sample_params(n, generator)
    return draw_lines(p), p.labels


def sample_tuples(batch: int, k: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """`batch` k-tuples: images (batch, k, 28, 28), image labels (batch, k), parity (batch,).

    The images of a tuple are contiguous, so `images.reshape(batch·k, 1, 28, 28)` feeds N1 all
    k·batch images at once and `scores.reshape(batch, k)` regroups them.
    """
    x, y = sample_lines(batch * k, generator)
    y = y.reshape(batch, k)
    return x.reshape(batch, k, SIZE, SIZE), y, y.prod(dim=1)
