"""Train S seeds of one small model at once with torch.func (stacked parameters + vmap).

The S copies are built by an init function from S generators, their parameters stacked along a
new leading axis (`torch.func.stack_module_state`), and the forward pass and the per-seed
gradient run as one vmapped `functional_call` (torch.func's vmap(grad(...))). Any module works.
For a Sequential of Linear layers and elementwise activations (the MLPs of SPEC A1 and friends) a
fast path runs the same maths as batched matmuls (torch.baddbmm) with one autograd backward of
the summed per-seed losses (the seeds are independent, so each slice of that gradient is its
seed's own gradient); on CPU it is ~2× faster than vmap (benchmarks/bench_ensemble.py).

Each seed owns its generators (init, data), so a seed's trajectory does not depend on how many
seeds share the ensemble: seed s in an ensemble of 16 follows the same path as seed s trained
alone by a plain `nn.Module` + `torch.optim` loop (equal up to float rounding of the batched
matmuls; tests/test_ensemble.py checks both, for SGD and Adam, on both paths).

    ens = Ensemble.build(lambda g: make_net(g), [gen_0, ..., gen_{S-1}])
    opt = SGD(lr=0.01)                      # or Adam(lr=1e-3, betas=(0.9, 0.99), eps=1e-5)
    loss = ens.step(opt, loss_fn, x, y)     # x: (S, B, ...), y: (S, B, ...) → loss (S,)
    out = ens(x_test)                       # (S, B, ...)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

Params = dict[str, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]  # (prediction (B, ...), target (B, ...)) -> scalar


class Ensemble:
    """S copies of one architecture with stacked parameters, each of shape (S, *param_shape)."""

    def __init__(self, skeleton: nn.Module, params: Params, buffers: Params) -> None:
        self.skeleton = skeleton  # on the meta device: only its structure is used
        self.params = params
        self.buffers = buffers
        self._fast = _is_plain_mlp(skeleton) and not buffers
        self.force_vmap = False  # True: always take the generic functional_call + vmap path

    @classmethod
    def build(
        cls,
        init_fn: Callable[[torch.Generator], nn.Module],
        generators: Sequence[torch.Generator],
        device: torch.device | str | None = None,
    ) -> Ensemble:
        """Build one module per generator with init_fn(g) and stack their parameters."""
        if not generators:
            raise ValueError("an ensemble needs at least one generator (one per seed)")
        modules = [init_fn(g) for g in generators]
        if device is not None:
            modules = [m.to(device) for m in modules]
        params, buffers = stack_module_state(modules)
        params = {k: v.detach().clone() for k, v in params.items()}
        buffers = {k: v.detach().clone() for k, v in buffers.items()}
        skeleton = copy.deepcopy(modules[0]).to("meta")
        return cls(skeleton, params, buffers)

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _call(self, params: Params, buffers: Params, x: Tensor) -> Tensor:
        return functional_call(self.skeleton, (params, buffers), (x,))

    def forward(self, x: Tensor, params: Params | None = None) -> Tensor:
        """x: (S, B, ...) one batch per seed → outputs (S, B, ...)."""
        p = self.params if params is None else params
        if self.fast and x.dim() == 3:
            return _stacked_sequential(self.skeleton, p, x)
        return vmap(self._call)(p, self.buffers, x)

    __call__ = forward

    @property
    def fast(self) -> bool:
        """True for a Sequential of Linear layers and parameter-free elementwise activations:
        then forward runs as batched matmuls (torch.baddbmm), ~2× faster than vmap on CPU."""
        return self._fast and not self.force_vmap

    def loss_and_grads(self, loss_fn: LossFn, x: Tensor, y: Tensor,
                       stacked: bool = False) -> tuple[Tensor, Params]:
        """Per-seed loss (S,) and gradients {name: (S, *shape)} of loss_fn(model_s(x_s), y_s).

        stacked=True says loss_fn already maps (S, B, ...) predictions and targets to per-seed
        losses (S,) (e.g. a mean over the last axis), which saves a vmap on the fast path.

        The seeds are independent, so the gradient of the summed per-seed losses with respect to
        the stacked parameters is, slice by slice, each seed's own gradient. On the generic path
        this is torch.func's vmap(grad(...)); on the fast path one autograd backward.
        """
        if self.fast and x.dim() == 3:
            with torch.enable_grad():
                p = {k: v.detach().requires_grad_(True) for k, v in self.params.items()}
                out = _stacked_sequential(self.skeleton, p, x)
                loss = loss_fn(out, y) if stacked else vmap(loss_fn)(out, y)
                g = torch.autograd.grad(loss.sum(), list(p.values()))
            return loss.detach(), dict(zip(p.keys(), g))

        def one(params: Params, buffers: Params, xs: Tensor, ys: Tensor) -> Tensor:
            return loss_fn(self._call(params, buffers, xs), ys)

        grads, loss = vmap(grad_and_value(one))(self.params, self.buffers, x, y)
        return loss, grads

    @torch.no_grad()
    def step(self, opt: Optimizer, loss_fn: LossFn, x: Tensor, y: Tensor,
             stacked: bool = False) -> Tensor:
        """One optimiser step on every seed; returns the per-seed loss before the step (S,)."""
        loss, grads = self.loss_and_grads(loss_fn, x, y, stacked)
        opt.update(self.params, grads)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"params": dict(self.params), "buffers": dict(self.buffers)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state["params"].items():
            self.params[k] = v.to(self.params[k].device).clone()
        for k, v in state["buffers"].items():
            self.buffers[k] = v.to(self.buffers[k].device).clone()

    def unstack(self, s: int) -> Params:
        """Seed s's parameters as a plain {name: tensor} dict (a view)."""
        return {k: v[s] for k, v in self.params.items()}


class Optimizer:
    """A functional optimiser on stacked parameter dicts; elementwise, so seeds stay independent."""

    def update(self, params: Params, grads: Params) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


class SGD(Optimizer):
    """Plain SGD, p ← p − lr·g (the arithmetic of torch.optim.SGD without momentum)."""

    def __init__(self, lr: float) -> None:
        self.lr = lr

    @torch.no_grad()
    def update(self, params: Params, grads: Params) -> None:
        keys = list(grads)
        torch._foreach_add_([params[k] for k in keys], [grads[k] for k in keys], alpha=-self.lr)


class Adam(Optimizer):
    """Adam with torch.optim.Adam's arithmetic (bias-corrected, eps outside the sqrt)."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.t = 0
        self.m: Params = {}
        self.v: Params = {}

    @torch.no_grad()
    def update(self, params: Params, grads: Params) -> None:
        b1, b2 = self.betas
        self.t += 1
        bc1 = 1 - b1**self.t
        bc2_sqrt = (1 - b2**self.t) ** 0.5
        for k, g in grads.items():
            if k not in self.m:
                self.m[k] = torch.zeros_like(g)
                self.v[k] = torch.zeros_like(g)
            m, v = self.m[k], self.v[k]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            params[k].addcdiv_(m, denom, value=-self.lr / bc1)

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "m": dict(self.m), "v": dict(self.v)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.m = {k: v.clone() for k, v in state["m"].items()}
        self.v = {k: v.clone() for k, v in state["v"].items()}


_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.LeakyReLU, nn.Softplus, nn.GELU)


def _is_plain_mlp(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and all(
        isinstance(m, (nn.Linear, *_ELEMENTWISE)) for m in module
    )


class _StackedLinear(torch.autograd.Function):
    """y = x Wᵀ + b for S stacked layers: x (S, B, in), w (S, out, in), b (S, out) or None.

    Autograd's own backward computes ∂L/∂W as gᵀx, which oneDNN runs 2–4× slower than (xᵀg)ᵀ when
    out > in (e.g. 300 µs against 75 µs for 16 seeds of 10 → 100, batch 128); this picks the
    faster orientation by shape. Same maths, so the same numbers up to float rounding.
    """

    @staticmethod
    def forward(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:  # type: ignore[override]
        wt = w.transpose(1, 2)
        return torch.bmm(x, wt) if b is None else torch.baddbmm(b.unsqueeze(1), x, wt)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, w, b = inputs
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, w = ctx.saved_tensors
        gx = None
        if ctx.needs_input_grad[0]:  # an outer product when out = 1: broadcasting is faster
            gx = g * w if w.shape[1] == 1 else torch.bmm(g, w)
        if w.shape[1] >= w.shape[2]:  # out ≥ in
            gw = torch.bmm(x.transpose(1, 2), g).transpose(1, 2)
        else:
            gw = torch.bmm(g.transpose(1, 2), x)
        gb = g.sum(1) if ctx.has_bias else None
        return gx, gw, gb


def _stacked_sequential(skeleton: nn.Sequential, params: Params, x: Tensor) -> Tensor:
    """The same maths as vmap(functional_call) for Linear/activation stacks: x (S, B, n_in)."""
    h = x
    for name, m in skeleton.named_children():
        if isinstance(m, nn.Linear):
            w = params[f"{name}.weight"]  # (S, out, in)
            b = params.get(f"{name}.bias")  # (S, out) or None
            h = _StackedLinear.apply(h, w, b)
        else:
            h = m(h)
    return h
