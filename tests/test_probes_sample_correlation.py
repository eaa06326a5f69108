"""probes/sample_correlation.py: k-means order and the encoded correlation image (SPEC C4)."""

from __future__ import annotations

import torch

from gradprobe.probes.sample_correlation import correlation_image, decode_image, kmeans_order


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
