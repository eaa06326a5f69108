"""Linearity error: how far a net is from the linear map given by its Jacobian at one input.

The looks-linear check of Balduzzi et al. 2017, §6 (SPEC C5): max |f(x) − A x| / max |f(x)| over
a batch, A = ∂f/∂x at one reference input x_ref. 0 for a linear net (a looks-linear net at init,
or a residual net whose branches are gated off); a per-input Jacobian would prove nothing, since
a bias-free ReLU net is positively homogeneous (f(x) = J(x) x for each x).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import jacrev


def linearity_error(model: nn.Module, x: Tensor, x_ref: Tensor) -> float:
    """x: (n, ...) batch, x_ref: one input (...). Relative max error of f(x) ≈ A x."""
    with torch.no_grad():
        fx = model(x).reshape(x.shape[0], -1)  # (n, outputs)
    a = jacrev(lambda z: model(z.unsqueeze(0)).reshape(-1))(x_ref.detach())
    a = a.reshape(fx.shape[1], -1).detach()  # (outputs, input size)
    pred = x.reshape(x.shape[0], -1) @ a.T
    return float((fx - pred).abs().max() / fx.abs().max().clamp_min(1e-30))
