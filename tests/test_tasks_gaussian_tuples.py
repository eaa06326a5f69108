"""tasks.gaussian_tuples: the product-of-signs targets."""

from __future__ import annotations

import torch

from gradprobe.tasks.gaussian_tuples import product_sign_targets, sample_tuples
from gradprobe.tasks.periodic import sample_directions


def test_product_sign_targets() -> None:
    g = torch.Generator().manual_seed(4)
    x = sample_tuples(5, 3, 4, g)
    u = sample_directions(2, 4, 1.0, g)
    h = product_sign_targets(u, x)
    ref = torch.sign(x @ u[1]).prod(1)
    assert h.shape == (2, 5) and torch.equal(h[1], ref)
