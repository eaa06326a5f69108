"""Feed-forward nets: Linear → [centring / BN] → activation per hidden layer, then a readout.

Used by SPEC B1 (Nielsen's sigmoid nets), C1 (1-D shattering), C2 and C3 (Balduzzi et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gradprobe.nets import init as inits
from gradprobe.nets.norm import norm_layer

ACTIVATIONS = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity,
    "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus,
}
INITS = ("he", "glorot", "lecun", "orthogonal")


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@torch.no_grad()
def init_weight_(w: torch.Tensor, scheme: str, g: torch.Generator) -> torch.Tensor:
    """he N(0, 2/fan_in); glorot N(0, 2/(fan_in+fan_out)); lecun N(0, 1/fan_in);
    orthogonal: Haar orthogonal with gain sqrt(2) (the ReLU gain)."""
    if scheme == "he":
        return inits.he_normal_(w, g)
    if scheme == "glorot":
        return inits.glorot_normal_(w, g)
    if scheme == "lecun":
        return inits.lecun_normal_(w, g)
    if scheme == "orthogonal":
        return inits.orthogonal_(w, g, gain=2**0.5)
    raise ValueError(f"unknown init {scheme!r}; choose one of {', '.join(INITS)}")


class MLP(nn.Sequential):
    """sizes = [n_in, h_1, …, h_L, n_out]: L hidden layers, each Linear → norm → act.

    norm: 'none', 'center' (mean-centring) or 'bn', applied to hidden pre-activations from hidden
    layer `norm_from` (1-based) on; SPEC C1 uses norm_from=2 so the scalar-input first layer keeps
    its kinks where its random biases put them. out_activation: applied after the readout
    (Nielsen's nets use sigmoid). bias_std: biases ~ N(0, bias_std²) (0 → zero biases).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation_name: str = "relu",
        *,
        norm: str = "none",
        norm_from: int = 1,
        out_activation: str | None = None,
        init: str = "he",
        bias_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        if len(sizes) < 2:
            raise ValueError("sizes needs at least [n_in, n_out]")
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        layers: list[nn.Module] = []
        n_hidden = len(sizes) - 2
        for i in range(len(sizes) - 1):
            lin = nn.Linear(sizes[i], sizes[i + 1])
            init_weight_(lin.weight, init, g)
            with torch.no_grad():
                if bias_std > 0:
                    lin.bias.normal_(0.0, bias_std, generator=g)
                else:
                    lin.bias.zero_()
            layers.append(lin)
            if i < n_hidden:
                if norm != "none" and i + 1 >= norm_from:
                    layers.append(norm_layer(norm, sizes[i + 1]))
                layers.append(activation(activation_name))
            elif out_activation is not None:
                layers.append(activation(out_activation))
        super().__init__(*layers)
        self.sizes = tuple(sizes)
