"""Per-layer gradient norms and the vanishing-gradient product bound, for any nn.Module.

Nielsen, "Why are deep neural networks hard to train?" (SPEC B1): the speed of layer l is
‖∂C/∂b^l‖ = ‖δ^l‖, and for a chain of affine layers and elementwise activations
    ‖δ^l‖ ≤ γ_l ∏_{r>l} (γ_r ‖W^r‖₂) · ‖∂C/∂a^L‖      (gradprobe.theory.vanishing).

Per-example gradients come from torch.func (vmap of grad over the batch), so the model must treat
samples independently (eval mode; FrozenNorm calibrated and frozen).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from gradprobe.probes.per_sample import per_sample_grads
from gradprobe.probes.units import affine_layers
from gradprobe.theory.vanishing import bias_gradient_bound, sup_derivative


@dataclass(frozen=True)
class LayerGradients:
    """Per-example gradient norms of the loss for each affine layer (a module with a ≥2-D weight).

    names: (L,) module names in registration (forward) order.
    bias_norms, weight_norms: (n, L) per-example ‖∂C/∂b^l‖₂ and ‖∂C/∂W^l‖_F (NaN: no bias).
    mean_bias_norms, mean_weight_norms: (L,) their means over the n examples (the "speed").
    bound, weight_bound: (n, L) the product bound on those norms, or None when the net is not a
        chain of affine layers and elementwise activations with known sup σ'.
    gamma: (L,) sup σ' of the activation(s) after each layer (product of them), or None.
    spectral_norms: (L,) ‖W^l‖₂, or None.
    """

    names: tuple[str, ...]
    bias_norms: Tensor
    weight_norms: Tensor
    mean_bias_norms: Tensor
    mean_weight_norms: Tensor
    bound: Tensor | None
    weight_bound: Tensor | None
    gamma: tuple[float, ...] | None
    spectral_norms: tuple[float, ...] | None


def _elementwise_gamma(m: nn.Module) -> float | None:
    """sup σ' for a known elementwise module, else None."""
    if isinstance(m, nn.Identity | nn.Dropout) and not (isinstance(m, nn.Dropout) and m.training):
        return 1.0
    if isinstance(m, nn.LeakyReLU):
        return sup_derivative("leaky_relu", m.negative_slope)
    if isinstance(m, nn.ELU | nn.CELU):
        return max(1.0, float(m.alpha))
    table = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu", nn.Softplus: "softplus",
             nn.Hardtanh: "hardtanh", nn.ReLU6: "relu6", nn.GELU: "gelu", nn.SiLU: "silu"}
    for cls, name in table.items():
        if type(m) is cls:
            return sup_derivative(name)
    return None


def _leaves(model: nn.Module) -> list[nn.Module] | None:
    """The modules of a (nested) nn.Sequential in call order, or None if it is not one."""
    if not isinstance(model, nn.Sequential):
        return None if list(model.children()) else [model]
    out: list[nn.Module] = []
    for child in model:
        sub = _leaves(child)
        if sub is None:
            return None
        out.extend(sub)
    return out


def affine_chain(model: nn.Module) -> list[tuple[nn.Linear, float]] | None:
    """[(Linear, γ after it)] when model is Flatten? → (Linear → elementwise*)+, else None."""
    leaves = _leaves(model)
    if not leaves:
        return None
    chain: list[tuple[nn.Linear, float]] = []
    for m in leaves:
        if isinstance(m, nn.Linear):
            chain.append((m, 1.0))
        elif isinstance(m, nn.Flatten) and not chain:
            continue
        else:
            gam = _elementwise_gamma(m)
            if gam is None:
                return None
            if not chain:
                if isinstance(m, nn.Identity):
                    continue
                return None
            lin, g0 = chain[-1]
            chain[-1] = (lin, g0 * gam)
    return chain or None


def layer_gradients(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batch: tuple[Tensor, Tensor],
    chunk_size: int | None = None,
) -> LayerGradients:
    """Per-layer, per-example ‖∂C/∂b^l‖ and ‖∂C/∂W^l‖ and, for affine chains, the product bound.

    loss_fn(output, target) → the loss of a batch (per-sample (n,) or reduced: it is called on
    batches of one, and summed). batch = (inputs (n, ...), targets (n, ...)).
    """
    x, y = batch
    layers = affine_layers(model)
    if not layers:
        raise ValueError("model has no affine layer (a module with a ≥2-D `weight`)")
    names = tuple(n for n, _ in layers)
    pnames = {id(p): k for k, p in model.named_parameters()}
    wanted = []
    for _, m in layers:
        wanted.append(pnames[id(m.weight)])
        if isinstance(getattr(m, "bias", None), Tensor):
            wanted.append(pnames[id(m.bias)])

    def per_ex(out: Tensor, t: Tensor) -> Tensor:
        return loss_fn(out, t).sum()

    grads = per_sample_grads(model, per_ex, x, y, params=list(dict.fromkeys(wanted)),
                             chunk_size=chunk_size)
    n = x.shape[0]
    bias_n = torch.full((n, len(layers)), math.nan, dtype=x.dtype, device=x.device)
    weight_n = torch.empty((n, len(layers)), dtype=x.dtype, device=x.device)
    for j, (_, m) in enumerate(layers):
        weight_n[:, j] = grads[pnames[id(m.weight)]].reshape(n, -1).norm(dim=1)
        if isinstance(getattr(m, "bias", None), Tensor):
            bias_n[:, j] = grads[pnames[id(m.bias)]].reshape(n, -1).norm(dim=1)

    bound = weight_bound = None
    gammas = snorms = None
    chain = affine_chain(model)
    if chain is not None and len(chain) == len(layers):
        with torch.no_grad():
            inputs_norm = []
            h = x.reshape(n, -1) if x.dim() > 2 else x
            for lin, _ in chain:
                inputs_norm.append(h.reshape(n, -1).norm(dim=1))
                h = model_slice_forward(model, lin, h)
            out = model(x)
        def one(o: Tensor, t: Tensor) -> Tensor:
            return per_ex(o.unsqueeze(0), t.unsqueeze(0))
        out_grad = vmap(grad(one))(out.detach(), y).reshape(n, -1).norm(dim=1)
        gammas = tuple(g for _, g in chain)
        snorms = spectral_norms(chain)
        bound = out_grad.unsqueeze(1) * unit_bound(gammas, snorms).to(out_grad)
        weight_bound = bound * torch.stack(inputs_norm, dim=1)
    return LayerGradients(
        names=names, bias_norms=bias_n, weight_norms=weight_n,
        mean_bias_norms=bias_n.mean(0), mean_weight_norms=weight_n.mean(0),
        bound=bound, weight_bound=weight_bound, gamma=gammas, spectral_norms=snorms,
    )


def spectral_norms(chain: list[tuple[nn.Linear, float]]) -> tuple[float, ...]:
    """‖W‖₂ of each Linear of the chain (float64 SVD); inf for a non-finite weight."""
    out = []
    for lin, _ in chain:
        w = lin.weight.detach().double()
        out.append(float(torch.linalg.matrix_norm(w, ord=2)) if torch.isfinite(w).all()
                   else math.inf)
    return tuple(out)


def unit_bound(gammas: tuple[float, ...], snorms: tuple[float, ...]) -> Tensor:
    """(L,) the product bound on ‖δ^l‖ for ‖∂C/∂a^L‖ = 1, float64."""
    return torch.tensor(bias_gradient_bound(list(gammas), list(snorms), 1.0), dtype=torch.float64)


def product_bound(model: nn.Module, called: list[nn.Module], out_norm: Tensor) -> Tensor | None:
    """(n, L) per-sample product bound on ‖δ^l‖ given the per-sample ‖∂ℓ_i/∂output‖ (n,), when
    the model is a chain of affine layers and elementwise activations whose Linear layers were
    called once each in `called` order; else None."""
    chain = affine_chain(model)
    if chain is None or called != [lin for lin, _ in chain]:
        return None
    unit = unit_bound(tuple(gm for _, gm in chain), spectral_norms(chain))
    return out_norm.double().unsqueeze(1) * unit.to(out_norm.device)


def model_slice_forward(model: nn.Module, lin: nn.Linear, h: Tensor) -> Tensor:
    """Apply `lin` and the elementwise modules that follow it in the chain to h."""
    leaves = _leaves(model) or []
    i = next(k for k, m in enumerate(leaves) if m is lin)
    h = lin(h)
    for m in leaves[i + 1:]:
        if isinstance(m, nn.Linear):
            break
        h = m(h)
    return h
