"""What batch norm divides the backward signal by: E[1/s²] per normalisation layer.

A `FrozenNorm` of kind "bn" maps x ↦ (x − mean)/s with batch statistics held constant, so the
backward signal of each unit is multiplied by 1/s and its variance by 1/s². Averaged over units,
E[1/s²] is the factor by which a BN layer rescales the gradient variance (Balduzzi et al. 2017,
Thm 3 reads it as 1/(1 + (l − 1)β²)); comparing it with the theorems' s² shows where they differ.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradprobe.nets.norm import FrozenNorm
from gradprobe.probes.hooks import forward_hooks


@torch.no_grad()
def inverse_variances(model: nn.Module, inputs: Tensor) -> list[float]:
    """One forward of `inputs`; for every batch-norm `FrozenNorm` (kind "bn") in call order, the
    mean over features of 1/(batch variance + eps) of its input (variance over every dim but 1,
    biased, as the layer computes it; frozen layers use their stored statistics)."""
    out: list[float] = []

    def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        x = args[0]
        if module.frozen:
            var = module.var
        else:
            var = x.var(dim=[d for d in range(x.dim()) if d != 1], unbiased=False)
        out.append(float((1.0 / (var.to(torch.float64) + module.eps)).mean()))

    norms = [m for m in model.modules() if isinstance(m, FrozenNorm) and m.kind == "bn"]
    with forward_hooks(norms, hook, pre=True):
        model(inputs)
    return out
