"""Saturated units of sigmoid/tanh-like layers: σ' below 1 % of its maximum on ≥ 95 % of inputs
(Balduzzi et al. 2017, §4; the `saturated` verdict)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradprobe.probes.hooks import forward_hooks
from gradprobe.probes.inputs import call_model
from gradprobe.probes.naming import CallNamer, module_names

SATURATING = (nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Softsign)


def relative_derivative(m: nn.Module, z: Tensor, out: Tensor) -> Tensor:
    """σ'(z) / max σ' elementwise for a SATURATING module m with input z and output out."""
    if isinstance(m, nn.Sigmoid):
        return out * (1 - out) / 0.25
    if isinstance(m, nn.Tanh):
        return 1 - out.pow(2)
    if isinstance(m, nn.Softsign):
        return 1 / (1 + z.abs()).pow(2)
    if isinstance(m, nn.Hardsigmoid):
        return ((z > -3) & (z < 3)).to(z.dtype)
    return ((z > m.min_val) & (z < m.max_val)).to(z.dtype)  # Hardtanh


@torch.no_grad()
def saturation(model: nn.Module, x: Any, units_fraction: float = 0.95,
               level: float = 0.01) -> list[dict]:
    """[{name, saturated_fraction}] per call of a SATURATING module on the inputs x: the share of
    its units with σ' < level·max σ' on at least `units_fraction` of the samples."""
    names = module_names(model)
    namer = CallNamer()
    rec: list[dict] = []

    def hook(m: nn.Module, args: tuple, out: Tensor) -> None:
        z = args[0].detach()
        d = relative_derivative(m, z, out.detach())
        flat = (d.reshape(z.shape[0], -1) < level).float().mean(0)  # (units,) share saturated
        rec.append({"name": namer(names[m]),
                    "saturated_fraction": float((flat >= units_fraction).float().mean())})

    mods = [m for m in model.modules() if isinstance(m, SATURATING)]
    if mods:
        with forward_hooks(mods, hook):
            call_model(model, x)
    return rec
