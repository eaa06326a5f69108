"""Signal in a minibatch of per-sample gradients: |mean| / std per coordinate (SPEC C4).

Balduzzi et al. 2017 §5, Fig. 5e–f (their "gradient norm"): for per-sample input gradients
g_i (n, ...), the mean over coordinates of |mean_i g_i| / std_i g_i. Gradients sharing a common
direction give a ratio of order 1; white noise gives the floor E|N(0, 1)|/sqrt(n) =
sqrt(2/π)/sqrt(n) (the mean of n standard normals over their standard deviation).
"""

from __future__ import annotations

import math

from torch import Tensor


def mean_std_ratio(g: Tensor) -> float:
    """Mean over coordinates of |mean| / std over the batch (dim 0; population std), float64."""
    flat = g.reshape(g.shape[0], -1).double()
    return float((flat.mean(0).abs() / flat.std(0, unbiased=False).clamp_min(1e-30)).mean())


def noise_floor(batch: int) -> float:
    """mean_std_ratio's value for i.i.d. Gaussian gradients, to first order: sqrt(2/π)/sqrt(n)."""
    return math.sqrt(2 / math.pi) / math.sqrt(batch)
