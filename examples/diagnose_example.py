"""A factory for `gradprobe diagnose examples/diagnose_example.py:make`.

An MLP 784-256-256-256-10 with sigmoid units and PyTorch's default init, probed on a batch of
random "images" with labels from a random linear teacher. Replace the body with your own model,
loss and batch: return (model, loss_fn, (inputs, targets)), or (model, input_shape).
"""

import torch
from torch import nn


def make():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # PyTorch's default init draws from the global generator
    model = nn.Sequential(
        nn.Linear(784, 256), nn.Sigmoid(),
        nn.Linear(256, 256), nn.Sigmoid(),
        nn.Linear(256, 256), nn.Sigmoid(),
        nn.Linear(256, 10),
    )
    x = torch.rand(128, 784, generator=g)
    teacher = torch.randn(784, 10, generator=g)
    y = ((x - 0.5) @ teacher).argmax(1)
    return model, nn.functional.cross_entropy, (x, y)


def make_shape():
    """The other form: a model and an input shape (Gaussian inputs are drawn)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 8 * 8, 10)), (3, 8, 8)
