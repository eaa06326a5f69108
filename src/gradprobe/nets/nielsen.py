"""Nielsen's fully connected nets for SPEC B1 ("Why are deep neural networks hard to train?").

[n_in, width × hidden, n_out] with a sigmoid readout. Sigmoid and tanh nets use the chapter's
init (weights N(0, 1/n_in), biases N(0, 1)); ReLU nets use He init (N(0, 2/n_in)) and zero
biases, the variance-preserving init the B1 claim `he_relu_balanced` is about.
"""

from __future__ import annotations

import torch

from gradprobe.nets.mlp import MLP

ACTS = ("sigmoid", "tanh", "relu")


def nielsen_net(activation: str, hidden: int, *, width: int = 30, n_in: int = 64,
                n_out: int = 10, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float64) -> MLP:
    """One of B1's nets: `hidden` hidden layers of `width` units, sigmoid output, in `dtype`."""
    if activation not in ACTS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTS)}")
    sizes = [n_in] + [width] * hidden + [n_out]
    if activation == "relu":
        m = MLP(sizes, "relu", out_activation="sigmoid", init="he", bias_std=0.0,
                generator=generator)
    else:
        m = MLP(sizes, activation, out_activation="sigmoid", init="lecun", bias_std=1.0,
                generator=generator)
    return m.to(dtype)
