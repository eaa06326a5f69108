"""Training losses and metrics shared by experiments: one definition each (move copies here)."""

from __future__ import annotations

import torch
from torch import Tensor


def hinge(pred: Tensor, y: Tensor) -> Tensor:
    """Hinge loss max(0, 1 − y·ŷ) averaged over the last (batch) axis.

    pred (..., B, 1) or (..., B), y (..., B) → (...): a scalar for one model, (S,) for a stack.
    """
    return torch.clamp(1.0 - y * pred.reshape(y.shape), min=0.0).mean(-1)


def sign_accuracy(pred: Tensor, y: Tensor) -> Tensor:
    """Mean 1[y·ŷ > 0] over the last axis; pred (..., B, 1) or (..., B), y (..., B) ∈ {±1}."""
    return (y * pred.reshape(y.shape) > 0).float().mean(-1)


def class_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean 1[argmax logits = label] over the batch. logits (..., B, C), labels (..., B)."""
    return (logits.argmax(-1) == labels).float().mean(-1)
