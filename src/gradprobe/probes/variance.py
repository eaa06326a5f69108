"""Per-layer gradient moments from the ordinary backward pass, without a second pass.

For y = x Wᵀ + b and a batch of n samples with per-sample losses ℓ_i, let g_i = ∂ℓ_i/∂y_i. Then
the per-sample gradient is ∇_W ℓ_i = g_i x_iᵀ, so

    Σ_i ‖∇_W ℓ_i‖² = Σ_i ‖g_i‖² ‖x_i‖²          (no (n, out, in) tensor is ever built)
    Σ_i (∇_W ℓ_i)²  = (g∘g)ᵀ (x∘x)               (elementwise, one matmul)

the closed forms BackPACK uses for its `Variance` extension (Dangel et al. 2020, §2); HF `Conv1D`
is the same with W transposed, and an embedding's Σ_i ‖∇ℓ_i‖² is Σ_i Σ_{t,s: id_t = id_s} g_tᵀg_s.
Every other unit (convolutions, norms, attention, RNNs, any module holding parameters) builds its
per-sample gradients (gradprobe.probes.per_sample) and reduces them at once. The hooks ride along
with whatever backward the training loop already does; they compute in float32 whatever the
autocast dtype, and an error in them is recorded (`errors`), never raised into that backward.

Moments are of the gradients of the per-sample losses ℓ_i. The hooks receive c·S·g_i where the
loss is L = c·Σ ℓ_i (c = 1/N for reduction='mean', N the samples pooled into the statistic; 1
for 'sum') and S a loss scale (GradScaler), and undo both. Pooling over several backwards (gradient
accumulation) sums the raw moments; N is then the samples of all of them, which is right when each
micro-batch's mean loss is divided by the number of micro-batches (the usual practice). Under
torch.distributed the per-sample sums are all-reduced, so every rank gets the global batch's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from gradprobe.probes.hooks import is_suspended
from gradprobe.probes.naming import CallNamer
from gradprobe.probes.per_sample import (
    call_batch_dim,
    closed_form_grads,
    f32,
    first_tensor,
    generic_grads,
    to_front,
)
from gradprobe.probes.units import Unit, kind_of, sample_units

Reduction = Literal["mean", "sum"]
SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True)
class Moments:
    """First and second moments of one parameter's per-sample gradients over a batch of n.

    n: batch size. mean: (param shape) ḡ = (1/n) Σ_i ∇ℓ_i. sum_sq: 0-dim Σ_i ‖∇ℓ_i‖².
    sq: (param shape) Σ_i (∇ℓ_i)² elementwise, or None unless asked for (it costs one matmul).
    """

    n: int
    mean: Tensor
    sum_sq: Tensor
    sq: Tensor | None = None

    @property
    def mean_sq(self) -> Tensor:
        """‖ḡ‖², 0-dim."""
        return torch.linalg.vector_norm(self.mean).square()

    @property
    def variance(self) -> Tensor:
        """Total unbiased variance tr Cov = (Σ‖∇ℓ_i‖² − n‖ḡ‖²)/(n − 1), 0-dim."""
        return (self.sum_sq - self.n * self.mean_sq) / (self.n - 1)

    @property
    def elementwise_variance(self) -> Tensor:
        """Unbiased variance of each coordinate (param shape); needs sq (elementwise=True)."""
        if self.sq is None:
            raise ValueError("elementwise variance needs Moments.sq: pass elementwise=True")
        return (self.sq - self.n * self.mean.pow(2)) / (self.n - 1)

    def snr_parts(self) -> tuple[Tensor, Tensor, Tensor]:
        """(signal, noise, snr), 0-dim each (SPEC A5): noise = tr Cov, signal = the unbiased
        estimate ‖ḡ‖² − tr Cov / n of ‖E ∇ℓ‖² (may be < 0), snr = signal / noise."""
        noise = self.variance
        signal = self.mean_sq - noise / self.n
        return signal, noise, signal / noise

    @property
    def snr(self) -> Tensor:
        """Single-sample gradient SNR ‖E ∇ℓ‖² / E‖∇ℓ − E ∇ℓ‖² (SPEC A5), 0-dim."""
        return self.snr_parts()[2]


@dataclass
class Raw:
    """Sums over samples of one parameter's received per-sample gradients (before undoing c):
    n samples, s = Σ_i r_i, ss = Σ_i ‖r_i‖², sq = Σ_i r_i² (or None); parts: backwards pooled."""

    n: int
    s: Tensor | None
    ss: Tensor
    sq: Tensor | None = None
    parts: int = 1

    def add(self, o: Raw) -> None:
        self.n += o.n
        self.parts += o.parts
        self.s = o.s if self.s is None else (self.s + o.s if o.s is not None else self.s)
        self.ss = self.ss + o.ss
        if self.sq is not None and o.sq is not None:
            self.sq = self.sq + o.sq


def _sqnorm(t: Tensor) -> Tensor:
    """Squared Euclidean norm of each row of a (n, d) tensor, (n,), without a squared copy."""
    return torch.linalg.vector_norm(t, dim=1).square()


def moments(unit: Unit, cap: tuple[tuple, dict], outs: list[Tensor], gouts: list[Tensor | None],
            batch_dim: int = 0, elementwise: bool = False, need_mean: bool = True,
            batch_size: int | None = None) -> dict[str, Raw]:
    """Raw moments of one unit call from its (args, kwargs), outputs and their gradients.

    need_mean=False leaves the weight's sum out (Linear / Conv1D: the caller reads it from the
    weight's own gradient, which autograd computes anyway).
    """
    m, kind = unit.module, unit.kind
    bd = call_batch_dim(m, first_tensor(*cap), batch_dim, batch_size)
    if kind == "generic":
        n = first_tensor(*cap).shape[bd]
        ps = generic_grads(m, unit.params, cap, outs, gouts, bd, n)
        return {k: _reduce(v, elementwise) for k, v in ps.items()}
    x = first_tensor(*cap)
    g = gouts[0]
    if g is None:
        g = torch.zeros_like(outs[0])
    x, g = to_front(x, bd), to_front(g, bd)
    x = x if kind == "embedding" else f32(x)
    g = f32(g)
    if kind in ("linear", "conv1d_hf"):
        return _linear(m, kind, x, g, elementwise, need_mean)
    if kind == "embedding":
        return _embedding(m, x, g, elementwise)
    ps = closed_form_grads(kind, m, x, g)
    return {k: _reduce(v, elementwise) for k, v in ps.items()}


def _reduce(ps: Tensor, elementwise: bool) -> Raw:
    ps = f32(ps)
    return Raw(ps.shape[0], ps.sum(0), ps.pow(2).sum(), ps.pow(2).sum(0) if elementwise else None)


def _linear(m: nn.Module, kind: str, x: Tensor, g: Tensor, elementwise: bool,
            need_mean: bool) -> dict[str, Raw]:
    n = x.shape[0]
    x3, g3 = x.reshape(n, -1, x.shape[-1]), g.reshape(n, -1, g.shape[-1])  # (n, T, in/out)
    tr = kind == "conv1d_hf"
    s = sq = None
    if x3.shape[1] == 1:
        x2, g2 = x3[:, 0], g3[:, 0]
        gn = _sqnorm(g2)
        ss = torch.dot(gn, _sqnorm(x2))
        if need_mean:
            s = x2.T @ g2 if tr else g2.T @ x2
        if elementwise:
            sq = x2.pow(2).T @ g2.pow(2) if tr else g2.pow(2).T @ x2.pow(2)
        b = Raw(n, g2.sum(0), gn.sum(), g2.pow(2).sum(0) if elementwise else None)
    else:
        t = x3.shape[1]
        if elementwise or t * t * (x3.shape[2] + g3.shape[2]) >= x3.shape[2] * g3.shape[2]:
            ps = torch.einsum("nti,nto->nio", x3, g3) if tr else \
                torch.einsum("nto,nti->noi", g3, x3)  # (n, W shape) per sample
            s, ss = ps.sum(0), ps.pow(2).sum()
            sq = ps.pow(2).sum(0) if elementwise else None
        else:  # Σ_i ‖G_iᵀX_i‖² = Σ_i ⟨G_iG_iᵀ, X_iX_iᵀ⟩, (n, T, T) Gram matrices
            ss = (g3 @ g3.transpose(1, 2) * (x3 @ x3.transpose(1, 2))).sum()
            if need_mean:
                s = torch.einsum("nti,nto->io", x3, g3) if tr else \
                    torch.einsum("nto,nti->oi", g3, x3)
        bias_ps = g3.sum(1)
        b = Raw(n, bias_ps.sum(0), bias_ps.pow(2).sum(),
                bias_ps.pow(2).sum(0) if elementwise else None)
    out = {"weight": Raw(n, s, ss, sq)}
    if getattr(m, "bias", None) is not None:
        out["bias"] = b
    return out


def _embedding(m: nn.Embedding, ids: Tensor, g: Tensor, elementwise: bool) -> dict[str, Raw]:
    n = ids.shape[0]
    ids2 = ids.reshape(n, -1)
    g3 = g.reshape(n, ids2.shape[1], -1)
    if m.padding_idx is not None:
        g3 = g3 * (ids2 != m.padding_idx).unsqueeze(-1).to(g3.dtype)
    s = torch.zeros(m.weight.shape, dtype=g3.dtype, device=g3.device)
    s.index_add_(0, ids2.reshape(-1), g3.reshape(-1, g3.shape[2]))
    same = (ids2.unsqueeze(2) == ids2.unsqueeze(1)).to(g3.dtype)  # (n, T, T)
    ss = (same * (g3 @ g3.transpose(1, 2))).sum()
    sq = None
    if elementwise:
        sq = closed_form_grads("embedding", m, ids, g)["weight"].pow(2).sum(0)
    return {"weight": Raw(n, s, ss, sq)}


def supports(m: nn.Module) -> bool:
    """True for Linear and zero-padded Conv1d/Conv2d (the layers `affine_modules` returns)."""
    return isinstance(m, nn.Linear) or (isinstance(m, nn.Conv1d | nn.Conv2d)
                                        and kind_of(m) == "conv")


def affine_modules(model: nn.Module) -> dict[str, nn.Module]:
    """{name: module} of the Linear / Conv1d / Conv2d layers of `model`, in registration order."""
    return {name or type(m).__name__: m for name, m in model.named_modules() if supports(m)}


def _outputs(out: Any) -> list[Tensor]:
    leaves, _ = tree_flatten(out)
    return [t for t in leaves if isinstance(t, Tensor) and t.is_floating_point()]


class MomentHooks:
    """Collect Moments of the chosen units during backward passes.

    units: {name: Unit} (default: every unit of the root passed to `attach`) or {name: module}.
    While `active`, a forward hook saves each unit's input and hooks its outputs; when their
    gradients arrive the raw moments are computed and pooled into `raw[key]` (a module called
    k > 1 times in one forward gets one entry per call, `name#k`). For a Linear / Conv1D called
    once whose weight no other module holds, the weight's gradient sum is read from the weight's
    own gradient (a parameter hook) instead of being recomputed: one matmul saved per layer.
    `on_complete()` runs when every captured call of a backward has its moments; `results`
    turns the pooled sums into Moments. loss_scale(): the factor S the loss was multiplied by.
    accumulation: 'mean' when pooled backwards' losses were divided by their number (the usual
    gradient accumulation), 'sum' when they were added as they are.
    """

    def __init__(self, modules: dict[str, Any] | None = None, reduction: Reduction = "mean",
                 elementwise: bool = False, on_complete: Callable[[], None] | None = None,
                 batch_dim: int = 0, loss_scale: Callable[[], float] | None = None,
                 accumulation: Reduction = "mean") -> None:
        for what, v in (("reduction", reduction), ("accumulation", accumulation)):
            if v not in ("mean", "sum"):
                raise ValueError(f"{what} must be 'mean' or 'sum', got {v!r}")
        self.accumulation = accumulation
        self.units = None if modules is None else {
            k: v if isinstance(v, Unit) else Unit(v, kind_of(v), {
                n: p for n, p in v.named_parameters(recurse=False) if p.requires_grad})
            for k, v in modules.items()}
        self.reduction, self.elementwise, self.batch_dim = reduction, elementwise, batch_dim
        self.on_complete, self.loss_scale = on_complete, loss_scale
        self.batch_size: int | None = None  # samples in the current forward, when known
        self.active = False
        self.raw: dict[str, dict[str, Raw]] = {}
        self.errors: dict[str, str] = {}
        self.skipped: dict[str, str] = {}  # unit → why it is not measured
        self._out_sums: list[tuple[str, Tensor]] = []  # (key, Σ output) in forward order
        self._grad_order: list[str] = []  # keys in the order their gradients arrived
        self.pending = 0
        self._namer = CallNamer()
        self._partial: dict[str, dict] = {}
        self._handles: list = []

    def attach(self, root: nn.Module | None = None) -> MomentHooks:
        """Register the hooks. root: the whole model (finds its units and shared weights)."""
        if self.units is None:
            if root is None:
                raise ValueError("MomentHooks needs modules or a root model")
            self.units = sample_units(root)
        holders: dict[int, int] = {}
        for mod in (root or nn.ModuleList([u.module for u in self.units.values()])).modules():
            for prm in mod.parameters(recurse=False):
                holders[id(prm)] = holders.get(id(prm), 0) + 1
        self._own_weight = {}
        for name, u in self.units.items():
            self._handles.append(u.module.register_forward_hook(self._forward_hook(name),
                                                                with_kwargs=True))
            w = u.params.get("weight")
            own = u.kind in ("linear", "conv1d_hf") and w is not None \
                and holders.get(id(w), 0) == 1
            self._own_weight[name] = own
            if own:
                self._handles.append(w.register_hook(self._param_hook(name)))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def reset(self) -> None:
        """Forget everything pooled so far."""
        self.raw, self.pending, self._partial = {}, 0, {}
        self._out_sums, self._grad_order = [], []
        self._namer.reset()

    def new_forward(self) -> None:
        """Start numbering calls afresh (a new micro-batch pools into the same `name#k`)."""
        self._namer.reset()

    def _scale(self) -> float:
        return float(self.loss_scale()) if self.loss_scale is not None else 1.0

    def _add(self, key: str, res: dict[str, Raw]) -> None:
        d = self.raw.setdefault(key, {})
        for p, r in res.items():
            if p in d:
                d[p].add(r)
            else:
                d[p] = r

    def _done(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self.on_complete is not None:
            self.on_complete()

    def _forward_hook(self, name: str) -> Callable:
        def hook(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            if not self.active or is_suspended():
                return
            outs = [o for o in _outputs(output) if o.requires_grad]
            if not outs:
                return
            key = self._namer(name)
            first = key == name
            with torch.no_grad():  # one sum per call, checked (one sync) only at the end
                self._out_sums.append((key, sum(o.detach().sum(dtype=torch.float32)
                                                for o in outs)))
            cap = (tuple(a.detach() if isinstance(a, Tensor) else a for a in args),
                   {k: v.detach() if isinstance(v, Tensor) else v for k, v in kwargs.items()})
            unit = self.units[name]  # type: ignore[index]
            bs = self.batch_size
            if bs is not None:
                x0 = first_tensor(*cap)
                bd = call_batch_dim(m, x0, self.batch_dim, bs)
                if x0.dim() <= bd or x0.shape[bd] != bs:
                    self.skipped.setdefault(name, "its input is shared across the batch (e.g. "
                                            "position embeddings): per-sample gradients are "
                                            "not separable there")
                    return
            self.pending += 1

            def grad_hook(*gs: Any) -> None:
                gouts = list(gs[0]) if len(gs) == 1 and isinstance(gs[0], tuple | list) \
                    else list(gs)
                via_param = self._own_weight.get(name, False) and first
                self._grad_order.append(key)
                try:
                    s = self._scale()
                    gouts = [None if q is None else (q.detach() if s == 1.0 else q.detach() / s)
                             for q in gouts]
                    with torch.no_grad():
                        res = moments(unit, cap, outs, gouts, self.batch_dim, self.elementwise,
                                      need_mean=not via_param, batch_size=bs)
                except Exception as e:  # never break the user's backward
                    self._error(key, e)
                    self._done()
                    return
                if via_param and res["weight"].s is None:
                    self._partial[name] = (key, res)
                    return
                self._add(key, res)
                self._done()

            if len(outs) == 1:
                outs[0].register_hook(grad_hook)
            else:
                torch.autograd.graph.register_multi_grad_hook(outs, grad_hook)
        return hook

    def _param_hook(self, name: str) -> Callable:
        def hook(grad: Tensor) -> None:
            part = self._partial.pop(name, None)
            if part is None:
                return
            key, res = part
            s = self._scale()
            res["weight"].s = f32(grad.detach()) if s == 1.0 else f32(grad.detach()) / s
            self._add(key, res)
            self._done()
        return hook

    def _error(self, key: str, e: Exception) -> None:
        if key not in self.errors:
            self.errors[key] = f"{type(e).__name__}: {e}"
            warnings.warn(f"gradprobe: per-sample statistics of {key} failed and are left out "
                          f"({type(e).__name__}: {e})", RuntimeWarning, stacklevel=2)

    def first_nonfinite(self) -> str | None:
        """The first call (forward order) whose output sum is not finite, as "key (output)";
        else the first (backward order) whose gradient moments are not, as "key (gradient)"."""
        if not self._out_sums:
            return None
        sums = torch.stack([s for _, s in self._out_sums])
        if bool(torch.isfinite(sums).all()):
            for key in self._grad_order:
                if any(not bool(torch.isfinite(r.ss)) for r in self.raw.get(key, {}).values()):
                    return f"{key} (gradient)"
            return None
        bad = int((~torch.isfinite(sums)).nonzero()[0, 0])
        return f"{self._out_sums[bad][0]} (output)"

    @property
    def results(self) -> dict[str, dict[str, Moments]]:
        """{key: {param: Moments}} of everything pooled since `reset` (all-reduced under
        torch.distributed: call it on every rank at the same point)."""
        out: dict[str, dict[str, Moments]] = {}
        dist = _world()
        for key in sorted(self.raw) if dist else self.raw:
            out[key] = {}
            for p, r in self.raw[key].items():
                c = 1.0 / r.n if self.reduction == "mean" else 1.0
                if self.accumulation == "sum":  # micro-batch losses added, not averaged
                    c *= r.parts
                s = r.s if r.s is not None else torch.zeros(())
                s2 = r.ss / (c * c)
                sq = None if r.sq is None else r.sq / (c * c)
                if dist:
                    s1, s2, sq, n = _all_reduce(s / c, s2, sq, r.n)
                    out[key][p] = Moments(n, s1 / n, s2, sq)
                else:  # mean = Σ_i ∇ℓ_i / n = s / (c·n): no copy when c·n = 1
                    f = 1.0 / (c * r.n)
                    out[key][p] = Moments(r.n, s if abs(f - 1.0) < 1e-12 else s * f, s2, sq)
        return out


def _world() -> bool:
    d = torch.distributed
    return d.is_available() and d.is_initialized() and d.get_world_size() > 1


def _all_reduce(s1: Tensor, s2: Tensor, sq: Tensor | None, n: int
                ) -> tuple[Tensor, Tensor, Tensor | None, int]:
    """Sum per-sample sums over ranks (one flat all_reduce)."""
    d = torch.distributed
    parts = [s1.reshape(-1), s2.reshape(1), torch.tensor([float(n)], dtype=s1.dtype,
                                                          device=s1.device)]
    if sq is not None:
        parts.append(sq.reshape(-1))
    flat = torch.cat(parts)
    d.all_reduce(flat)
    k = s1.numel()
    s1r, s2r, nr = flat[:k].reshape(s1.shape), flat[k], int(round(float(flat[k + 1])))
    sqr = flat[k + 2:].reshape(sq.shape) if sq is not None else None
    return s1r, s2r, sqr, nr


def gradient_moments(model: nn.Module, loss_fn: Callable[[Any, Any], Tensor],
                     batch: tuple[Any, Any], reduction: Reduction = "mean",
                     elementwise: bool = False, modules: dict[str, Any] | None = None,
                     batch_dim: int = 0) -> dict[str, dict[str, Moments]]:
    """Per-unit gradient moments of `loss_fn(model(x), y)` on one batch, leaving `.grad` alone.

    loss_fn must reduce the per-sample losses with `reduction` ('mean' or 'sum'). Returns
    {unit name: {"weight": Moments, "bias": Moments, ...}}; default units: the Linear / Conv1d /
    Conv2d layers (pass `modules=sample_units(model)` for every parameter).
    """
    hooks = MomentHooks(modules if modules is not None else affine_modules(model), reduction,
                        elementwise, batch_dim=batch_dim).attach(model)
    hooks.active = True
    try:
        x, y = batch
        with torch.enable_grad():
            loss = loss_fn(model(x), y)
            params = [p for p in model.parameters() if p.requires_grad]
            torch.autograd.grad(loss, params, allow_unused=True)
    finally:
        hooks.detach()
    return hooks.results


def gradient_variance(model: nn.Module, loss_fn: Callable[[Any, Any], Tensor],
                      batch: tuple[Any, Any], reduction: Reduction = "mean",
                      elementwise: bool = False) -> dict[str, Tensor]:
    """{"layer.weight": unbiased variance of the per-sample gradients} for each affine layer.

    elementwise=False: the total variance tr Cov (0-dim, the cheap closed form);
    elementwise=True: per coordinate (param shape), like BackPACK's `Variance` (rescaled).
    """
    res = gradient_moments(model, loss_fn, batch, reduction, elementwise)
    return {f"{layer}.{pname}": (mo.elementwise_variance if elementwise else mo.variance)
            for layer, d in res.items() for pname, mo in d.items()}
