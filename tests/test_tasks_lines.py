"""The line-image generator of SPEC A4: geometry, labels, clipping, determinism, reference."""

from __future__ import annotations

import math

import torch

from gradprobe.tasks.lines import (
    SIZE,
    LineParams,
    draw_lines,
    draw_lines_reference,
    sample_params,
    sample_tuples,
)


def _one(theta: float, length: float, cx: float, cy: float) -> LineParams:
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return LineParams(t(theta), t(length), t(cx), t(cy))


def _pixels(img: torch.Tensor) -> list[tuple[int, int]]:
    rows, cols = torch.nonzero(img[0, 0], as_tuple=True)
    return list(zip(rows.tolist(), cols.tolist()))


def test_vectorised_matches_per_pixel_reference() -> None:
    g = torch.Generator().manual_seed(0)
    p = sample_params(300, g)
    assert torch.equal(draw_lines(p), draw_lines_reference(p))


def test_horizontal_and_vertical_line_lengths() -> None:
    # θ = 0: a horizontal line of length 10 centred at (14, 14) covers 11 columns of one row
    pix = _pixels(draw_lines(_one(0.0, 10.0, 14.0, 14.0)))
    assert {r for r, _ in pix} == {14}
    assert sorted(c for _, c in pix) == list(range(9, 20))
    # θ = π/2: vertical, 11 rows of one column
    pix = _pixels(draw_lines(_one(math.pi / 2, 10.0, 14.0, 14.0)))
    assert {c for _, c in pix} == {14}
    assert sorted(r for r, _ in pix) == list(range(9, 20))


def test_extent_matches_length_and_angle_inside_the_image() -> None:
    """For lines well inside the image the bounding box is l·|cos θ| × l·|sin θ| (±1 pixel)."""
    g = torch.Generator().manual_seed(1)
    p = sample_params(500, g)
    p = LineParams(p.theta, p.length, torch.full_like(p.cx, 13.5), torch.full_like(p.cy, 13.5))
    imgs = draw_lines(p)
    for i in range(0, 500, 7):
        rows, cols = torch.nonzero(imgs[i, 0], as_tuple=True)
        w = int(cols.max() - cols.min())
        h = int(rows.max() - rows.min())
        L, th = float(p.length[i]), float(p.theta[i])
        assert abs(w - L * abs(math.cos(th))) <= 1.0 + 1e-9
        assert abs(h - L * abs(math.sin(th))) <= 1.0 + 1e-9
        # a connected digital line: at least one pixel per unit of the longer extent
        assert len(rows) >= max(w, h) + 1


def test_angle_sign_gives_label_and_slope_direction() -> None:
    g = torch.Generator().manual_seed(2)
    p = sample_params(400, g)
    p = LineParams(p.theta, torch.full_like(p.length, 20.0), torch.full_like(p.cx, 13.5),
                   torch.full_like(p.cy, 13.5))
    imgs, y = draw_lines(p), p.labels
    assert torch.equal(y, torch.where(p.theta < math.pi / 2, 1.0, -1.0))
    for i in range(400):
        th = float(p.theta[i])
        if min(th, abs(th - math.pi / 2), math.pi - th) < 0.15:
            continue  # near-axis lines are ambiguous after rounding
        rows, cols = torch.nonzero(imgs[i, 0], as_tuple=True)
        cov = float(((rows.double() - rows.double().mean())
                     * (cols.double() - cols.double().mean())).mean())
        # y = +1 slopes upwards on screen: column grows as row (downwards) shrinks
        assert (cov < 0) == (float(y[i]) > 0)


def test_border_clipping() -> None:
    # centred at the corner: only the part inside the image is drawn, nothing wraps around
    img = draw_lines(_one(0.0, 20.0, 0.0, 0.0))
    pix = _pixels(img)
    assert sorted(c for _, c in pix) == list(range(0, 11))
    assert {r for r, _ in pix} == {0}
    assert img.sum() == 11
    # a line entirely off the grid in rows: nothing drawn (the spare scatter slot is dropped)
    img = draw_lines(_one(math.pi / 2, 6.0, 27.0, 27.0))
    assert set(_pixels(img)) == {(r, 27) for r in range(24, 28)}


def test_binary_and_shapes_and_tuples() -> None:
    g = torch.Generator().manual_seed(3)
    x, yi, yt = sample_tuples(64, 3, g)
    assert x.shape == (64, 3, SIZE, SIZE) and yi.shape == (64, 3) and yt.shape == (64,)
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert (x.sum((2, 3)) >= 3).all()  # every image has a line
    assert torch.equal(yt, yi.prod(1))
    assert set(yi.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(yi.mean())) < 0.2


def test_determinism_under_a_seed() -> None:
    a = sample_tuples(32, 2, torch.Generator().manual_seed(7))
    b = sample_tuples(32, 2, torch.Generator().manual_seed(7))
    c = sample_tuples(32, 2, torch.Generator().manual_seed(8))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])
