"""The probe report's per-layer rows: speed, product bound, batch-gradient norm and single-sample
SNR for every call of every unit (gradprobe.probes.units), from one captured backward.

The per-sample gradients of sample i are those of its own loss ℓ_i: the captured ∂L/∂z is divided
by c (L = c·Σ ℓ_i; c = 1/B for a mean). For a loss that is not a sum over samples (e.g. a token
mean over a padded batch) they are B × sample i's share of the batch gradient, whose mean is the
batch gradient: the SNR is then that of these shares.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gradprobe.probes import per_sample as rules
from gradprobe.probes.capture import Call, Captured
from gradprobe.probes.layers import product_bound
from gradprobe.probes.snr import snr_from_gram

_GRAM64 = 4_000_000  # Gram matrices from fewer floats than this are taken in float64


def _slice(c: Call, bd: int, n_all: int, m: int) -> tuple[tuple, list, list]:
    """The call's (args, kwargs), outputs and output gradients restricted to the first m samples."""
    from torch.utils._pytree import tree_flatten, tree_unflatten

    def cut(t: Any) -> Any:
        d = rules.batched_dim(t, bd, n_all)
        return t.narrow(d, 0, m) if d is not None else t
    leaves, spec = tree_flatten(c.cap)
    cap = tree_unflatten([cut(v) for v in leaves], spec)
    gs = [torch.zeros_like(o) if q is None else q for o, q in zip(c.outs, c.gouts, strict=True)]
    return cap, [cut(o.detach()) for o in c.outs], [cut(q) for q in gs]


def gram(c: Call, bd: int, n_all: int, m: int, inv_c: float) -> Tensor:
    """(m, m) Gram matrix of the call's per-sample gradients (all its parameters together)."""
    u = c.unit
    if u.kind in ("linear", "conv1d_hf") and c.gouts[0] is not None:
        x = rules.f32(rules.to_front(rules.first_tensor(*c.cap), bd))[:m]
        g = rules.f32(rules.to_front(c.gouts[0], bd))[:m] * inv_c
        if x.dim() == 2:  # K = (g gᵀ)∘(x xᵀ) (+ g gᵀ for the bias): no per-sample tensor
            x, g = x.double(), g.double()
            gg = g @ g.T
            return gg * (x @ x.T) + (gg if "bias" in u.params else 0)
    cap, outs, gouts = _slice(c, bd, n_all, m)
    if u.kind == "generic":
        ps = rules.generic_grads(u.module, u.params, cap, outs, [q * inv_c for q in gouts],
                                 bd, m)
    else:
        x = rules.to_front(rules.first_tensor(*cap), bd)
        x = x if u.kind == "embedding" else rules.f32(x)
        ps = rules.closed_form_grads(u.kind, u.module, x,
                                     rules.f32(rules.to_front(gouts[0], bd)) * inv_c)
    G = torch.cat([rules.f32(ps[k]).reshape(m, -1) for k in u.params if k in ps], dim=1)
    if G.numel() <= _GRAM64:
        G = G.double()
    return G @ G.T


def layer_rows(cap: Captured, B: int, m: int, reduction: str, batch_dim: int,
               names: dict[int, str], notes: list[str],
               model: Any) -> tuple[list[dict], bool, str | None]:
    """(rows, finite, first non-finite layer) for every unit call of the captured pass."""
    inv_c = float(B) if reduction == "mean" else 1.0
    rows: list[dict] = []
    finite = math.isfinite(cap.loss)
    bad_fwd = bad_grad = None
    speeds: list[Tensor] = []
    for c in cap.calls:
        u = c.unit
        bd = rules.call_batch_dim(u.module, rules.first_tensor(*c.cap), batch_dim, B)
        params = list(u.params.values())
        w_ok = all(bool(torch.isfinite(p).all()) for p in params)
        o_ok = all(bool(torch.isfinite(o).all()) for o in c.outs)
        g_ok = all(q is None or bool(torch.isfinite(q).all()) for q in c.gouts)
        if bad_fwd is None and not (w_ok and o_ok):
            bad_fwd = c.key
        if not g_ok:
            bad_grad = c.key  # the last in forward order is the first the backward reached
        weight = u.params.get("weight")
        wn = float((weight if weight is not None else torch.cat(
            [p.detach().reshape(-1) for p in params])).detach().norm())
        d: dict[str, Any] = {"name": c.key, "kind": type(u.module).__name__,
                             "weight_norm": wn, "speed": None, "bound": None,
                             "bound_holds": None,
                             "affine": any(p.dim() >= 2 for p in params),
                             "params": [names[id(p)] for p in params]}
        g0 = c.gouts[0] if c.gouts else None
        s = None
        n_u = rules.first_tensor(*c.cap).shape[bd]
        if n_u != B:  # e.g. position embeddings: one input broadcast over the batch
            d["reason"] = (f"its input holds {n_u} sample(s), not the batch's {B} (shared across "
                           "the batch): per-sample gradients are not separable here")
            g0 = None
            d["grad_norm"] = float(torch.cat([cap.param_grads[k].reshape(-1) for k in
                                              d["params"] if k in cap.param_grads]).norm())
        if g0 is not None:
            gf = rules.f32(rules.to_front(g0, bd))
            s = gf.reshape(gf.shape[0], -1).norm(dim=1) * inv_c  # (B,) ‖∂ℓ_i/∂z_i‖
            d["speed"] = float(s.mean())
        speeds.append(s if s is not None else torch.zeros(B))
        mu = min(m, n_u)
        d.setdefault("grad_norm", None)
        d.update(snr=None, snr_se=None, batch_snr=None, signal=None, noise=None,
                 below_noise=None)
        if mu >= 2 and n_u == B and w_ok and o_ok and g_ok:
            try:
                K = gram(c, bd, rules.first_tensor(*c.cap).shape[bd], mu, inv_c)
                res = snr_from_gram(K)
            except Exception as e:  # a module the generic rule cannot re-run alone
                d["reason"] = f"per-sample gradients failed ({type(e).__name__}: {e})"
            else:
                d.update(grad_norm=math.sqrt(max(float(K.mean()), 0.0)), snr=res.snr,
                         snr_se=res.signal_se / res.noise if res.noise > 0 else None,
                         batch_snr=res.snr * B, signal=res.signal, noise=res.noise,
                         below_noise=res.below_noise, samples=mu)
                finite = finite and math.isfinite(res.noise)
        rows.append(d)
    finite = finite and bad_fwd is None and bad_grad is None
    if finite and cap.gout is not None:  # the product bound, sample by sample, on chains
        gout = rules.f32(rules.to_front(cap.gout, batch_dim))
        out_norm = gout.reshape(gout.shape[0], -1).norm(dim=1) * inv_c
        bound = product_bound(model, [c.unit.module for c in cap.calls], out_norm)
        if bound is not None:
            for j, d in enumerate(rows):
                d["bound"] = float(bound[:, j].mean())
                d["bound_holds"] = bool((speeds[j].double() <= bound[:, j] * (1 + 1e-5)
                                         + 1e-12).all())
    return rows, finite, bad_fwd or bad_grad
