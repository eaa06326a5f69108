"""Per-layer gradient moments from one ordinary backward pass, without per-sample gradients.

For y = x Wᵀ + b and a batch of n samples with per-sample losses ℓ_i, let g_i = ∂ℓ_i/∂y_i. Then
the per-sample gradient is ∇_W ℓ_i = g_i x_iᵀ, so

    Σ_i ‖∇_W ℓ_i‖² = Σ_i ‖g_i‖² ‖x_i‖²          (no (n, out, in) tensor is ever built)
    Σ_i (∇_W ℓ_i)²  = (g∘g)ᵀ (x∘x)               (elementwise, one matmul)

the closed forms BackPACK uses for its `Variance` extension (Dangel et al. 2020, "BackPACK", §2).
Convolutions build their (n, out, C, k, k) per-sample weight gradients with torch.func (vmap of
the weight-gradient convolution), which are small next to the activations. The quantities are
collected by a forward hook (saving the layer input) and a tensor hook on the layer output
(receiving g during backward), so they ride along with whatever backward pass the training loop
already does; for a Linear layer the mean gradient is read from the weight's own gradient.

Every moment is of the gradients of the *per-sample* losses ℓ_i: the hooks receive c·g_i where
the loss is L = c·Σ ℓ_i (c = 1/n for reduction='mean', 1 for 'sum') and undo the c.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import vmap

SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
Reduction = Literal["mean", "sum"]


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


def _conv_geometry(m: nn.Conv1d | nn.Conv2d) -> tuple[tuple[int, int], ...] | None:
    """(kernel, stride, padding, dilation) as 2-D pairs, or None if unfold cannot express it."""
    if m.padding_mode != "zeros":
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


def supports(m: nn.Module) -> bool:
    """True when the closed forms here cover module m (Linear, zero-padded Conv1d/Conv2d)."""
    if isinstance(m, nn.Linear):
        return True
    return isinstance(m, nn.Conv1d | nn.Conv2d) and _conv_geometry(m) is not None


def _sqnorm(t: Tensor) -> Tensor:
    """Squared Euclidean norm of each row of a (n, d) tensor, (n,), without a squared copy."""
    return torch.linalg.vector_norm(t, dim=1).square()


def moments(m: nn.Module, x: Tensor, g: Tensor, scale: float, elementwise: bool = False,
            need_mean: bool = True) -> dict[str, Moments | Tensor]:
    """Moments of module m's weight (and bias) from its input x and output gradient g.

    x: (n, ...) the module input; g: (n, ...) ∂L/∂output with L = scale · Σ_i ℓ_i.
    need_mean=False (Linear only): leave the weight's mean out (the caller takes it from the
    parameter's own gradient, which autograd computes anyway); the weight entry is then the
    0-dim sum_sq and optional sq, as {"weight_sum_sq": ..., "weight_sq": ...}.
    """
    n = x.shape[0]
    s2 = scale * scale
    out: dict[str, Moments | Tensor] = {}
    if isinstance(m, nn.Linear):
        x3, g3 = x.reshape(n, -1, x.shape[-1]), g.reshape(n, -1, g.shape[-1])  # (n, T, in/out)
        mean = sq = None
        if x3.shape[1] == 1:
            x2, g2 = x3[:, 0], g3[:, 0]
            gn = _sqnorm(g2)  # (n,) ‖g_i‖²
            sum_sq = torch.dot(gn, _sqnorm(x2)) / s2
            if need_mean:
                mean = g2.T @ x2 / (scale * n)  # (out, in)
            if elementwise:
                sq = g2.pow(2).T @ x2.pow(2) / s2
            b_mean, b_sum_sq = g2.sum(0) / (scale * n), gn.sum() / s2
            b_sq = g2.pow(2).sum(0) / s2 if elementwise else None
        else:
            t = x3.shape[1]
            if elementwise or t * t * (x3.shape[2] + g3.shape[2]) >= x3.shape[2] * g3.shape[2]:
                ps = torch.einsum("nto,nti->noi", g3, x3) / scale  # (n, out, in) per sample
                mean, sum_sq = ps.mean(0), ps.pow(2).sum()
                sq = ps.pow(2).sum(0) if elementwise else None
            else:  # Σ_i ‖G_iᵀX_i‖² = Σ_i ⟨G_iG_iᵀ, X_iX_iᵀ⟩, (n, T, T) Gram matrices
                sum_sq = (g3 @ g3.transpose(1, 2) * (x3 @ x3.transpose(1, 2))).sum() / s2
                if need_mean:
                    mean = torch.einsum("nto,nti->oi", g3, x3) / (scale * n)
            bias_ps = g3.sum(1) / scale  # (n, out)
            b_mean, b_sum_sq = bias_ps.mean(0), bias_ps.pow(2).sum()
            b_sq = bias_ps.pow(2).sum(0) if elementwise else None
        if mean is None:
            out["weight_sum_sq"] = sum_sq
            if sq is not None:
                out["weight_sq"] = sq
        else:
            out["weight"] = Moments(n, mean, sum_sq, sq)
    elif isinstance(m, nn.Conv1d | nn.Conv2d):
        geom = _conv_geometry(m)
        if geom is None:
            raise ValueError(f"unsupported convolution {m}")
        k, s, p, d = geom
        if isinstance(m, nn.Conv1d):
            def weight_grad(xi: Tensor, gi: Tensor) -> Tensor:
                return torch.nn.grad.conv1d_weight(xi[None], m.weight.shape, gi[None], s[1], p[1],
                                                   d[1], m.groups)
        else:
            def weight_grad(xi: Tensor, gi: Tensor) -> Tensor:
                return torch.nn.grad.conv2d_weight(xi[None], m.weight.shape, gi[None], s, p, d,
                                                   m.groups)
        # (n, *weight.shape) per-sample gradients; vmap turns the n small weight-gradient
        # convolutions into one grouped convolution (5-10x faster than unfold + bmm on CPU)
        ps = vmap(weight_grad)(x, g) / scale
        gl = g.reshape(n, g.shape[1], -1)  # (n, out, L)
        mean, sum_sq = ps.mean(0), ps.pow(2).sum()
        out["weight"] = Moments(n, mean, sum_sq, ps.pow(2).sum(0) if elementwise else None)
        bias_ps = gl.sum(-1) / scale
        b_mean, b_sum_sq = bias_ps.mean(0), bias_ps.pow(2).sum()
        b_sq = bias_ps.pow(2).sum(0) if elementwise else None
    else:
        raise ValueError(f"no closed form for {type(m).__name__}")
    if getattr(m, "bias", None) is not None:
        out["bias"] = Moments(n, b_mean, b_sum_sq, b_sq)
    return out


class MomentHooks:
    """Collect Moments of the chosen modules during backward passes.

    modules: {name: module}, each supported (see `supports`). While `active`, a forward hook
    saves each module's input and puts a tensor hook on its output; when the gradient arrives the
    moments are computed and stored in `results[name]` (a module called k > 1 times in one forward
    gets one entry per call, `name#k`). For a Linear layer called once whose weight no other
    module holds, the weight's mean gradient is read from the weight's own gradient (a hook on
    the parameter) instead of being recomputed: that saves one matmul per layer. (A weight also
    used functionally elsewhere, outside any module, would make that mean include its other use.)
    `on_complete()` runs when every captured layer has its moments. Nothing is computed while
    inactive beyond one flag test per hook call.
    """

    def __init__(self, modules: dict[str, nn.Module], reduction: Reduction = "mean",
                 elementwise: bool = False,
                 on_complete: Callable[[], None] | None = None) -> None:
        bad = [n for n, m in modules.items() if not supports(m)]
        if bad:
            raise ValueError(f"no closed-form moments for modules {bad}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.modules, self.reduction, self.elementwise = modules, reduction, elementwise
        self.on_complete = on_complete
        self.active = False
        self.results: dict[str, dict[str, Moments]] = {}
        self.pending = 0
        self._calls: dict[str, int] = {}
        self._partial: dict[str, dict] = {}  # name → moments still waiting for the weight grad
        self._handles: list = []

    def attach(self, root: nn.Module | None = None) -> MomentHooks:
        """Register the hooks. root: the whole model, to find weights shared between modules."""
        holders: dict[int, int] = {}
        for mod in (root or nn.ModuleList(self.modules.values())).modules():
            for prm in mod.parameters(recurse=False):
                holders[id(prm)] = holders.get(id(prm), 0) + 1
        self._own_weight = {}
        for name, m in self.modules.items():
            self._handles.append(m.register_forward_hook(self._forward_hook(name)))
            own = (isinstance(m, nn.Linear) and m.weight.requires_grad
                   and holders.get(id(m.weight), 0) == 1)
            self._own_weight[name] = own
            if own:
                self._handles.append(m.weight.register_hook(self._param_hook(name)))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def reset(self) -> None:
        self.results, self.pending, self._calls, self._partial = {}, 0, {}, {}

    def _done(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self.on_complete is not None:
            self.on_complete()

    def _forward_hook(self, name: str) -> Callable:
        def hook(m: nn.Module, args: tuple, output: Tensor) -> None:
            if not self.active or not isinstance(output, Tensor) or not output.requires_grad:
                return
            k = self._calls.get(name, 0) + 1
            self._calls[name] = k
            key = name if k == 1 else f"{name}#{k}"
            x = args[0].detach()
            self.pending += 1

            def grad_hook(g: Tensor) -> None:
                scale = 1.0 / x.shape[0] if self.reduction == "mean" else 1.0
                via_param = self._own_weight.get(name, False) and self._calls[name] == 1
                with torch.no_grad():
                    res = moments(m, x, g.detach(), scale, self.elementwise,
                                  need_mean=not via_param)
                if "weight_sum_sq" in res:
                    res["n"], res["scale"] = x.shape[0], scale
                    self._partial[name] = res
                    return
                self.results[key] = res
                self._done()

            output.register_hook(grad_hook)
        return hook

    def _param_hook(self, name: str) -> Callable:
        def hook(grad: Tensor) -> None:
            part = self._partial.pop(name, None)
            if part is None:
                return
            n, scale = part["n"], part["scale"]
            mean = grad.detach() / (scale * n)
            res = {"weight": Moments(n, mean, part["weight_sum_sq"], part.get("weight_sq"))}
            if "bias" in part:
                res["bias"] = part["bias"]
            self.results[name] = res
            self._done()
        return hook


def affine_modules(model: nn.Module) -> dict[str, nn.Module]:
    """{name: module} of the modules of `model` that `moments` supports, in registration order."""
    return {name or type(m).__name__: m for name, m in model.named_modules() if supports(m)}


def gradient_moments(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                     batch: tuple[Tensor, Tensor], reduction: Reduction = "mean",
                     elementwise: bool = False) -> dict[str, dict[str, Moments]]:
    """Per-layer gradient moments of `loss_fn(model(x), y)` on one batch, leaving `.grad` alone.

    loss_fn must reduce the per-sample losses with `reduction` ('mean' or 'sum'). Returns
    {layer name: {"weight": Moments, "bias": Moments}} for every Linear / Conv1d / Conv2d.
    """
    hooks = MomentHooks(affine_modules(model), reduction, elementwise).attach(model)
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


def gradient_variance(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                      batch: tuple[Tensor, Tensor], reduction: Reduction = "mean",
                      elementwise: bool = False) -> dict[str, Tensor]:
    """{"layer.weight": unbiased variance of the per-sample gradients} for each affine layer.

    elementwise=False: the total variance tr Cov (0-dim, the cheap closed form);
    elementwise=True: per coordinate (param shape), like BackPACK's `Variance` (rescaled).
    """
    res = gradient_moments(model, loss_fn, batch, reduction, elementwise)
    return {f"{layer}.{pname}": (mo.elementwise_variance if elementwise else mo.variance)
            for layer, d in res.items() for pname, mo in d.items()}
