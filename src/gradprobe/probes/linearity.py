"""Linearity error: how far a model is from ONE linear map over a batch (SPEC C5, E1).

    err = max_i |f(x_i) − A·x_i| / max_i |f(x_i)|,   A = ∂f/∂x at one fixed reference input.

A per-input Jacobian would prove nothing: a bias-free ReLU net is positively homogeneous, so
f(x) = J(x)·x holds for every one of them. With one A, a looks-linear net at initialisation
(Balduzzi et al. 2017 §6), or a residual net whose branches are gated off, gives float rounding
(~1e-7 in float32) and a rectifier net O(1). The model must treat samples independently (eval
mode for batch norm).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import jacrev


def linearity_error(model: nn.Module, x: Tensor, x_ref: Tensor, affine: bool = False) -> float:
    """max |f(x) − A·x| / max |f(x)| over the batch x (n, ...), A = ∂f/∂x at x_ref (...).

    Outputs are flattened per input: (n, ...) → (n, K). affine=True compares f(x) − f(x_ref)
    with A·(x − x_ref) instead (ignores a constant offset, e.g. batch norm's running mean after
    training).
    """
    with torch.no_grad():
        fx = model(x).reshape(x.shape[0], -1)  # (n, K)
        f0 = model(x_ref.unsqueeze(0)).reshape(-1)  # (K,)
    a = jacrev(lambda z: model(z.unsqueeze(0)).reshape(-1))(x_ref.detach())
    a = a.reshape(fx.shape[1], -1).detach()  # (K, input size)
    if affine:
        pred = (x - x_ref).reshape(x.shape[0], -1) @ a.T + f0
    else:
        pred = x.reshape(x.shape[0], -1) @ a.T
    return float((fx - pred).abs().max() / fx.abs().max().clamp_min(1e-30))
