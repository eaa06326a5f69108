"""How a batch's inputs are handed to a model, and where its samples are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn


def call_model(model: nn.Module, x: Any) -> Any:
    """model(**x) for a dict of tensors (e.g. input_ids + attention_mask), else model(x)."""
    if isinstance(x, Mapping):
        return model(**x)
    return model(x)


def batch_size(x: Any, batch_dim: int = 0) -> int:
    """Number of samples in x: the size along batch_dim of its first tensor."""
    if isinstance(x, Tensor):
        return int(x.shape[batch_dim])
    vals = x.values() if isinstance(x, Mapping) else x
    for v in vals:
        if isinstance(v, Tensor) or isinstance(v, Mapping | tuple | list):
            return batch_size(v, batch_dim)
    raise ValueError("the inputs hold no tensor")


def take(x: Any, n: int, batch_dim: int = 0) -> Any:
    """The first n samples of x (tensors, tuples/lists and dicts of them); others as they are."""
    if isinstance(x, Tensor):
        return x.narrow(batch_dim, 0, n) if x.dim() > batch_dim else x
    if isinstance(x, Mapping):
        return {k: take(v, n, batch_dim) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return type(x)(take(v, n, batch_dim) for v in x)
    return x


def main_output(out: Any) -> Tensor | None:
    """The tensor to differentiate for output-side quantities: the output itself, a dict /
    ModelOutput's `logits` (else its first tensor), or a tuple's first tensor."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), Tensor):
            return out["logits"]
        out = list(out.values())
    if isinstance(out, tuple | list):
        return next((o for o in out if isinstance(o, Tensor)), None)
    return None
