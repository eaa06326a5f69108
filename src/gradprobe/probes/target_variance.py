"""Gradient variance across a family of targets, Var(H, F, w) (Shalev-Shwartz et al. 2017, eq. 2).

    Var(H, F, w) = E_h ‖∇F_h(w) − E_h' ∇F_h'(w)‖²,   F_h(w) = E_x ℓ(p_w(x), h(x)).

With per-input Jacobians J_i = ∂p_w(x_i)/∂w (n × P) and the loss derivative
c_ti = ∂ℓ/∂ŷ (p_w(x_i), h_t(x_i)), every target's gradient is a row of C J / n, so one matrix
product per batch of targets gives all of them (SPEC A2, A3). The common part of the rows is
removed from C before the product (centring over targets), which keeps the small variance away from
the large mean gradient in floating point.

- exact=True: `targets` is the whole family H, uniformly weighted: population variance (÷T).
- exact=False: `targets` are T i.i.d. draws from H: the unbiased sample variance (÷(T − 1)).
- weights (T,), summing to 1: target t stands for probability mass w_t of H, and
  Var = Σ_t w_t ‖g_t − Σ_t' w_t' g_t'‖². Exact when the rows are the whole family with their
  probabilities; a stratified estimate when strata are sampled (w_t = P(stratum)/T_stratum; its
  only bias is the −Σ_c P(c)² Var_c / T_c from estimating the mean, small for T_c ≫ 1). Use it
  when a few targets carry most of the variance (the low-degree parities do).

Also returned: G² = E_x ‖∂p_w(x)/∂w‖² (Theorem 1's G(w)²) and the finite-sample floor
(1/n)·mean_i[var_t c_ti · ‖J_i‖²], which is what Var would be if the targets were independent
noise at each of the n inputs (SPEC A3; for the square loss var_t c_ti = var_t h_t(x_i)).
Works for any module with one scalar output per input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

Loss = Literal["hinge", "square"]
Targets = Tensor | Callable[[Tensor], Tensor]  # (T, n), or x_chunk (m, ...) -> (T, m)


@dataclass(frozen=True)
class TargetVariance:
    """Var(H, F, w) at one w, with the quantities Theorem 1 bounds it by.

    var: Var(H, F, w) (population variance over H if exact, else unbiased over T sampled targets).
    g2: G(w)² = mean over the n inputs of ‖∂p_w(x)/∂w‖².
    mean_grad_norm2: ‖E_h ∇F_h(w)‖² (mean over the T targets used).
    floor: (1/n)·mean_i[var_t c_ti ‖J_i‖²], the finite-x-sample floor (zero-signal level).
    n_targets, n_inputs, n_params: T, n, P. exact: whether the targets were the whole family.
    """

    var: float
    g2: float
    mean_grad_norm2: float
    floor: float
    n_targets: int
    n_inputs: int
    n_params: int
    exact: bool


def loss_derivative(loss: Loss, pred: Tensor, y: Tensor) -> Tensor:
    """∂ℓ/∂ŷ: hinge max(0, 1 − y·ŷ) → −y·1[y·ŷ < 1]; square ½(ŷ − y)² → ŷ − y (broadcasting)."""
    if loss == "hinge":
        return -y * (y * pred < 1).to(y.dtype)
    if loss == "square":
        return pred - y
    raise ValueError(f"unknown loss {loss!r}; choose hinge or square")


def per_sample_jacobians(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Outputs p (m,) and flattened Jacobians ∂p(x_i)/∂w (m, P) of a scalar-output model.

    Parameter order is model.named_parameters(); computed with torch.func (vmap of jacrev).
    """
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def f(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        return functional_call(model, (p, buffers), (xi.unsqueeze(0),)).reshape(())

    def f_aux(p: dict[str, Tensor], xi: Tensor) -> tuple[Tensor, Tensor]:
        out = f(p, xi)
        return out, out

    jac, out = vmap(jacrev(f_aux, has_aux=True), in_dims=(None, 0))(params, x)
    flat = torch.cat([jac[k].reshape(x.shape[0], -1) for k in params], dim=1)
    return out.detach(), flat.detach()


def target_variance(
    model: nn.Module,
    inputs: Tensor,
    targets: Targets,
    loss: Loss = "hinge",
    exact: bool = True,
    chunk: int = 1024,
    weights: Tensor | None = None,
) -> TargetVariance:
    """Var(H, F, w) of `model` at its current parameters; F_h is the mean loss over `inputs`.

    inputs: (n, ...) — all inputs (an exact expectation over x) or an i.i.d. sample of them.
    targets: (T, n) values h_t(x_i), or a function x_chunk (m, ...) → (T, m) evaluated per chunk
    (for large n·T). chunk: inputs per Jacobian block (memory ≈ chunk·(P + T) floats).
    """
    n = inputs.shape[0]
    acc = torch.float64
    sum_c: Tensor | None = None  # Σ_i c̄_i J_i → n·mean gradient (P,)
    sum_dev: Tensor | None = None  # Σ_i (c_ti − c̄_i) J_i → n·(g_t − ḡ) (T, P)
    g2 = 0.0
    floor = 0.0
    n_targets = 0
    for start in range(0, n, chunk):
        xc = inputs[start:start + chunk]
        yc = targets(xc) if callable(targets) else targets[:, start:start + chunk]
        pred, jac = per_sample_jacobians(model, xc)  # (m,), (m, P)
        c = loss_derivative(loss, pred.unsqueeze(0), yc.to(pred.dtype))  # (T, m)
        n_targets = c.shape[0]
        w = None if weights is None else weights.to(c)
        c_mean = c.mean(0) if w is None else w @ c  # (m,)
        dev = c - c_mean
        jn2 = torch.linalg.vector_norm(jac, dim=1).pow(2)  # (m,), without a copy of jac
        both = (torch.cat([dev, c_mean.unsqueeze(0)]) @ jac).to(acc)  # one product, (T + 1, P)
        part_dev, part_mean = both[:-1], both[-1]
        sum_c = part_mean if sum_c is None else sum_c + part_mean
        sum_dev = part_dev if sum_dev is None else sum_dev + part_dev
        g2 += float(jn2.to(acc).sum())
        if w is not None:
            var_c = (w.to(acc) @ dev.to(acc).pow(2))
        elif n_targets > 1:
            var_c = dev.to(acc).pow(2).sum(0) / (n_targets - (0 if exact else 1))
        else:
            var_c = torch.zeros_like(jn2, dtype=acc)
        floor += float((var_c * jn2.to(acc)).sum())
    assert sum_c is not None and sum_dev is not None
    per_target = sum_dev.div(n).pow(2).sum(1)  # (T,) ‖g_t − ḡ‖²
    if weights is not None:
        var = float(weights.to(per_target) @ per_target)
    else:
        var = float(per_target.sum() / (n_targets if exact else max(n_targets - 1, 1)))
    return TargetVariance(
        var=var,
        g2=g2 / n,
        mean_grad_norm2=float(sum_c.div(n).pow(2).sum()),
        floor=floor / n / n,
        n_targets=n_targets,
        n_inputs=n,
        n_params=int(sum_dev.shape[1]),
        exact=exact,
    )
