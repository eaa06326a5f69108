"""Mean-centring and batch norm whose statistics are computed over a batch and then frozen.

Balduzzi et al. 2017 (Fig. 1, §3) centre / normalise over the batch of inputs, which for the 1-D
experiments is the grid itself. To read per-point input derivatives off one backward pass the
statistics must be constants: the derivative then is that of the fixed function the batch
defines. Back-propagating through the batch statistics (train-mode BN) instead couples all points
and changes every derivative (SPEC C1).

`FrozenNorm` has three modes:
- default (``frozen=False``): statistics of the current batch, *detached* (no gradient through
  them). Identical to computing them over the batch and freezing them, and works under vmap.
- frozen (``frozen=True``): the stored statistics (set them with `calibrate(model, batch)`), so
  any input, alone or in a batch, sees the same function.
- ``grad_through_stats=True``: ordinary train-mode normalisation (statistics keep their gradient).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

NormKind = Literal["center", "bn"]


class FrozenNorm(nn.Module):
    """Centre (and for kind="bn" scale to unit variance) each feature over the batch.

    Features are dim 1; statistics reduce over every other dim (batch, and space for conv maps).
    No affine parameters: at initialisation BN's γ = 1, β = 0.
    """

    def __init__(self, num_features: int, kind: NormKind = "bn", eps: float = 1e-5,
                 grad_through_stats: bool = False) -> None:
        super().__init__()
        if kind not in ("center", "bn"):
            raise ValueError(f"kind must be 'center' or 'bn', got {kind!r}")
        self.kind = kind
        self.eps = eps
        self.grad_through_stats = grad_through_stats
        self.frozen = False
        self._record = False
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("var", torch.ones(num_features))

    def extra_repr(self) -> str:
        return f"{self.mean.shape[0]}, kind={self.kind}, frozen={self.frozen}"

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.frozen:
            mean, var = self.mean, self.var
        else:
            dims = [d for d in range(x.dim()) if d != 1]
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            if not self.grad_through_stats:
                mean, var = mean.detach(), var.detach()
            if self._record:
                self.mean.copy_(mean.detach())
                self.var.copy_(var.detach())
        y = x - mean.reshape(shape)
        if self.kind == "bn":
            y = y / torch.sqrt(var.reshape(shape) + self.eps)
        return y


def norm_layer(kind: str, width: int) -> nn.Module:
    """'none' → Identity, 'center' / 'bn' → FrozenNorm of that kind."""
    if kind == "none":
        return nn.Identity()
    return FrozenNorm(width, kind)  # type: ignore[arg-type]


@torch.no_grad()
def calibrate(model: nn.Module, inputs: Tensor) -> nn.Module:
    """Compute every FrozenNorm's statistics over `inputs` (one forward), then freeze them."""
    norms = [m for m in model.modules() if isinstance(m, FrozenNorm)]
    for m in norms:
        m.frozen, m._record = False, True
    try:
        model(inputs)
    finally:
        for m in norms:
            m._record = False
    for m in norms:
        m.frozen = True
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """Back to per-batch (detached) statistics."""
    for m in model.modules():
        if isinstance(m, FrozenNorm):
            m.frozen = False
    return model
