"""Per-sample gradients: of a whole model through torch.func, and of one module's own parameters
from the input it saw and the output gradient it received (no second pass through the model).

A *unit* is a module whose parameters are measured together (gradprobe.probes.units). For a unit
called on inputs X with output Z and dL/dZ = c·G (L = c·Σ_i ℓ_i, c = 1/n for a mean-reduced loss)
the per-sample gradient of sample i is, per kind:

    linear     W: Σ_t g_it x_itᵀ,  b: Σ_t g_it                 (nn.Linear; t runs over tokens)
    conv1d_hf  W: Σ_t x_it g_itᵀ                                (Hugging Face `Conv1D`, W is in×out)
    conv       the weight-gradient convolution of sample i      (nn.Conv1d / nn.Conv2d)
    embedding  W[v]: Σ_{t: id_it = v} g_it                      (nn.Embedding)
    layernorm  w: Σ_t g_it ∘ x̂_it, b: Σ_t g_it                  (nn.LayerNorm / nn.RMSNorm)
    generic    vjp of the module on sample i alone with g_i      (anything else: MHA, RNNs, ...)

Samples sit along `batch_dim` (0, or 1 for sequence-first layouts); modules with a `batch_first`
attribute (RNNs, nn.MultiheadAttention) use their own. The generic kind re-runs the module on each
sample in eval mode (vmapped, or a loop where vmap cannot run it, e.g. cuDNN/GRU kernels).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

Capture = tuple[tuple, dict]  # (args, kwargs) of one module call


def per_sample_grads(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    inputs: Any,
    targets: Any,
    params: Sequence[str] | None = None,
    chunk_size: int | None = None,
) -> dict[str, Tensor]:
    """Gradient of loss_fn(model(x_i[None]), t_i[None]) for each sample i: name → (n, *shape).

    inputs / targets: tensors (or tuples of tensors) with the sample index first.
    params: parameter names to differentiate (default: all that require grad); the rest are
    held fixed. chunk_size: samples per vmapped chunk, to bound memory.
    """
    named = dict(model.named_parameters())
    chosen = list(params) if params is not None else [k for k, p in named.items()
                                                      if p.requires_grad]
    unknown = [k for k in chosen if k not in named]
    if unknown:
        raise ValueError(f"unknown parameter names {unknown}; the model has {list(named)}")
    fixed = {k: p.detach() for k, p in named.items() if k not in chosen}
    buffers = dict(model.named_buffers())
    train = {k: named[k].detach() for k in chosen}

    def sample_loss(theta: dict[str, Tensor], x: Any, t: Any) -> Tensor:
        x1 = tree_map(lambda a: a.unsqueeze(0), x)
        t1 = tree_map(lambda a: a.unsqueeze(0), t)
        out = functional_call(model, ({**fixed, **theta}, buffers), (x1,))
        return loss_fn(out, t1)

    return vmap(grad(sample_loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(
        train, inputs, targets)


def unit_batch_dim(m: nn.Module, batch_dim: int) -> int:
    """Where the samples sit in module m's input: its own `batch_first` if it has one."""
    bf = getattr(m, "batch_first", None)
    return batch_dim if bf is None else (0 if bf else 1)


def call_batch_dim(m: nn.Module, x: Tensor, batch_dim: int, n: int | None) -> int:
    """Where module m's input x holds the n samples: m's own `batch_first`, else batch_dim, else
    (after a pooling over the sequence, say) the first dim of size n."""
    bd = unit_batch_dim(m, batch_dim)
    if n is None or (x.dim() > bd and x.shape[bd] == n):
        return bd
    found = batched_dim(x, bd, n)
    return bd if found is None else found


def first_tensor(args: tuple, kwargs: dict) -> Tensor:
    """The module's main input: its first positional tensor, else its first keyword tensor."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, Tensor):
            return a
    raise ValueError("the module was called without a tensor input")


def to_front(t: Tensor, bd: int) -> Tensor:
    """t with its batch dim bd moved to the front."""
    return t if bd == 0 else t.movedim(bd, 0)


def f32(t: Tensor) -> Tensor:
    """Half-precision tensors (autocast) in float32; others as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def conv_geometry(m: nn.Module) -> tuple[tuple[int, int], ...] | None:
    """(kernel, stride, padding, dilation) of a zero-padded Conv1d/2d as 2-D pairs, else None."""
    if not isinstance(m, nn.Conv1d | nn.Conv2d) or m.padding_mode != "zeros":
        return None
    two = (lambda v: (1, v[0])) if isinstance(m, nn.Conv1d) else (lambda v: tuple(v))
    k, s, d = two(m.kernel_size), two(m.stride), two(m.dilation)
    if isinstance(m.padding, str):
        if m.padding == "valid":
            p = (0, 0)
        elif any((di * (ki - 1)) % 2 for ki, di in zip(k, d, strict=True)):
            return None  # 'same' with an even receptive field pads asymmetrically
        else:
            p = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d, strict=True))
    else:
        p = (0, m.padding[0]) if isinstance(m, nn.Conv1d) else tuple(m.padding)
    return k, s, p, d


def conv_weight_grads(m: nn.Module, x: Tensor, g: Tensor) -> Tensor:
    """(n, *weight.shape) per-sample weight gradients of a Conv1d/2d from input x and grad g."""
    k, s, p, d = conv_geometry(m)  # type: ignore[misc]
    if isinstance(m, nn.Conv1d):
        def weight_grad(xi: Tensor, gi: Tensor) -> Tensor:
            return torch.nn.grad.conv1d_weight(xi[None], m.weight.shape, gi[None], s[1], p[1],
                                               d[1], m.groups)
    else:
        def weight_grad(xi: Tensor, gi: Tensor) -> Tensor:
            return torch.nn.grad.conv2d_weight(xi[None], m.weight.shape, gi[None], s, p, d,
                                               m.groups)
    # vmap turns the n small weight-gradient convolutions into one grouped convolution
    return vmap(weight_grad)(x, g)


def norm_hat(m: nn.Module, x: Tensor) -> Tensor:
    """x̂: the normalised input of a LayerNorm / RMSNorm before its affine parameters."""
    shape = tuple(m.normalized_shape)
    if isinstance(m, nn.LayerNorm):
        return nn.functional.layer_norm(x, shape, None, None, m.eps)
    return nn.functional.rms_norm(x, shape, None, m.eps)


def closed_form_grads(kind: str, m: nn.Module, x: Tensor, g: Tensor) -> dict[str, Tensor]:
    """{param: (n, *shape)} per-sample gradients for the closed-form kinds; x, g batch-first,
    float32 or wider; g = ∂ℓ_i/∂output (already rescaled to per-sample losses)."""
    n = x.shape[0]
    out: dict[str, Tensor] = {}
    if kind in ("linear", "conv1d_hf"):
        x3, g3 = x.reshape(n, -1, x.shape[-1]), g.reshape(n, -1, g.shape[-1])
        eq = "nto,nti->noi" if kind == "linear" else "nti,nto->nio"
        out["weight"] = torch.einsum(eq, g3, x3)
        bias = g3.sum(1)
    elif kind == "conv":
        out["weight"] = conv_weight_grads(m, x, g)
        bias = g.reshape(n, g.shape[1], -1).sum(-1)
    elif kind == "embedding":
        ids = x.reshape(n, -1)
        g3 = g.reshape(n, ids.shape[1], -1)
        if m.padding_idx is not None:
            g3 = g3 * (ids != m.padding_idx).unsqueeze(-1).to(g3.dtype)
        w = torch.zeros((n, *m.weight.shape), dtype=g3.dtype, device=g3.device)
        out["weight"] = w.scatter_add_(1, ids.unsqueeze(-1).expand(-1, -1, g3.shape[2]), g3)
        return out
    elif kind == "layernorm":
        k = len(tuple(m.normalized_shape))
        tail = g.shape[g.dim() - k:]
        if m.weight is not None:
            out["weight"] = (g * norm_hat(m, x)).reshape(n, -1, *tail).sum(1)
        bias = g.reshape(n, -1, *tail).sum(1)
    else:
        raise ValueError(f"no closed form for kind {kind!r}")
    if getattr(m, "bias", None) is not None:
        out["bias"] = bias
    return out


def batched_dim(t: Any, bd: int, n: int) -> int | None:
    """The dim of tensor t that holds the n samples (bd if it fits, else the first of size n)."""
    if not isinstance(t, Tensor) or t.dim() == 0:
        return None
    if t.dim() > bd and t.shape[bd] == n:
        return bd
    return next((d for d, s in enumerate(t.shape) if s == n), None)


def generic_grads(m: nn.Module, params: dict[str, nn.Parameter], cap: Capture, outs: list[Tensor],
                  gouts: list[Tensor | None], bd: int, n: int) -> dict[str, Tensor]:
    """{param: (n, *shape)} per-sample gradients of `params` (names relative to m) by re-running
    m on each sample alone (in eval mode) and pulling back that sample's output gradient.

    cap: the call's (args, kwargs); outs / gouts: its flattened output tensors and ∂ℓ_i/∂them.
    """
    args, kwargs = cap
    leaves, spec = tree_flatten((args, kwargs))
    in_dims = [batched_dim(a, bd, n) for a in leaves]
    out_dims = [batched_dim(o, bd, n) for o in outs]
    gs = [torch.zeros_like(o) if gr is None else gr for o, gr in zip(outs, gouts, strict=True)]
    fixed = {k: v.detach() for k, v in m.named_parameters() if k not in params}
    buffers = dict(m.named_buffers())
    theta = {k: p.detach() for k, p in params.items()}

    def vjp_one(th: dict[str, Tensor], leaves_i: list, gs_i: list) -> dict[str, Tensor]:
        def f(th_: dict[str, Tensor]) -> Tensor:
            a, kw = tree_unflatten(leaves_i, spec)
            res, _ = tree_flatten(functional_call(m, ({**fixed, **th_}, buffers), a, kw))
            res = [r for r in res if isinstance(r, Tensor) and r.is_floating_point()]
            return sum((r.float() * gi.float()).sum() for r, gi in zip(res, gs_i, strict=True)
                       if gi is not None)
        return grad(f)(th)

    def expand(t: Any, d: int | None) -> Any:
        return t.unsqueeze(d) if d is not None else t

    modes = [(mod, mod.training) for mod in m.modules()]
    for mod, _ in modes:
        mod.training = False
    try:
        try:
            def one(th: dict, lv: list, gv: list) -> dict:
                lv = [expand(a, d) for a, d in zip(lv, in_dims, strict=True)]
                gv = [expand(a, d) for a, d in zip(gv, out_dims, strict=True)]
                return vjp_one(th, lv, gv)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # missing batching rules
                return vmap(one, in_dims=(None, in_dims, out_dims))(theta, leaves, gs)
        except Exception:  # no vmap rule, data-dependent control flow: a loop over samples
            rows: list[dict[str, Tensor]] = []
            for i in range(n):
                lv = [a.narrow(d, i, 1) if d is not None else a
                      for a, d in zip(leaves, in_dims, strict=True)]
                gv = [a.narrow(d, i, 1) if d is not None else a
                      for a, d in zip(gs, out_dims, strict=True)]
                with torch.enable_grad():
                    th = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
                    a, kw = tree_unflatten(lv, spec)
                    res, _ = tree_flatten(functional_call(m, ({**fixed, **th}, buffers), a, kw))
                    res = [r for r in res if isinstance(r, Tensor) and r.is_floating_point()]
                    tot = sum((r.float() * gi.float()).sum()
                              for r, gi in zip(res, gv, strict=True))
                    gr = torch.autograd.grad(tot, list(th.values()), allow_unused=True)
                rows.append({k: torch.zeros_like(v) if q is None else q
                             for (k, v), q in zip(th.items(), gr, strict=True)})
            return {k: torch.stack([r[k] for r in rows]) for k in theta}
    finally:
        for mod, mode in modes:
            mod.training = mode


def flatten_grads(grads: dict[str, Tensor]) -> Tensor:
    """name → (n, *shape) to one (n, p) matrix (in the dict's order)."""
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)
