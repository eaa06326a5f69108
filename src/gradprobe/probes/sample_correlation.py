"""Correlation image of per-sample gradients over a minibatch, in k-means order (SPEC C4).

Balduzzi et al. 2017 §5, Fig. 5a–b: |correlation| between the samples' minibatch-centred
gradients, rows and columns reordered by a k-means clustering (k = 10) of the gradients of a
two-layer net, so that structure shows as blocks on the diagonal. Stored compactly for
summary.json: one hex string per row, one byte per entry, value round(255·|corr|).
"""

from __future__ import annotations

import torch
from torch import Tensor


def kmeans_order(g: Tensor, k: int, seed: int) -> tuple[list[int], list[int]]:
    """(sample order grouping the rows of g (n, ...) by cluster, cluster label per sample):
    k-means (sklearn, seeded) on the unit-normalised flattened rows."""
    from sklearn.cluster import KMeans

    flat = g.reshape(g.shape[0], -1).double()
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-30)
    km = KMeans(n_clusters=k, n_init=4, random_state=seed % (2**31))
    labels = km.fit_predict(flat.cpu().numpy())
    order = sorted(range(len(labels)), key=lambda i: (int(labels[i]), i))
    return order, [int(v) for v in labels]


def correlation_image(g: Tensor, order: Tensor, keep: int) -> list[str]:
    """|corr| between the samples' minibatch-centred gradients g (n, ...), rows/cols in `order`,
    `keep` of them (evenly spaced), encoded one hex string per row (see `decode_image`)."""
    flat = g.reshape(g.shape[0], -1).double()
    flat = flat - flat.mean(0, keepdim=True)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-30)
    sel = order[torch.linspace(0, len(order) - 1, keep).round().long()]
    c = (flat[sel] @ flat[sel].T).abs().clamp(0, 1)
    q = (c * 255).round().to(torch.uint8).cpu().numpy()
    return [row.tobytes().hex() for row in q]


def decode_image(rows: list[str]) -> list[list[float]]:
    """Inverse of correlation_image's encoding: |corr| values in [0, 1] (to 1/255)."""
    return [[b / 255 for b in bytes.fromhex(r)] for r in rows]
