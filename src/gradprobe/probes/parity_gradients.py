"""The gradient for every one of the 2^d parity targets at once (SPEC D2, A2): exact Var(H, F, w).

For the hinge and the square loss ∂ℓ/∂ŷ(p, y) = α(x) + β(x)·y (theory.parity.
affine_loss_derivative), so for the parity χ_s

    ∇F_s = (1/N) Σ_x α(x) J(x) + (1/N) Σ_x χ_s(x) β(x) J(x),      J(x) = ∂p_w(x)/∂w,  N = 2^d,

and the second sum, for all s, is one Walsh–Hadamard transform over the N inputs of the rows
β(x)·J(x) (theory.parity.walsh_hadamard): O(P·d·N) for P parameters. The parameters are taken in
column chunks of at most `memory_bytes` per (N, chunk) slab, the per-input Jacobians recomputed
for each chunk (torch.func, blocks of `input_chunk` inputs), so the memory stays bounded at d = 20.

Since E_s χ_s(x) = 1[x = 0], E_s ∇F_s = (1/N)(Σ_x α J + β(0) J(0)), and the deviation of parity s
is (W[s] − β(0)J(0))/N with W the transform. Exact, no sampling: `var` is the population variance
over the whole family (Theorem 1's Var with |H| = 2^d).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from gradprobe.probes.target_variance import per_sample_jacobians
from gradprobe.tasks.parity import all_inputs
from gradprobe.theory.parity import (
    affine_loss_derivative,
    parity_variance_closed_form,
    walsh_hadamard,
)


@dataclass(frozen=True)
class ParityGradients:
    """Every parity's gradient deviation at one w, exactly.

    dev2: (N,) ‖∇F_s − E_s ∇F_s‖² per secret s (all_inputs order: bit k of s is v*_k).
    var: Var(H, F, w) = mean of dev2 over the N = 2^d parities.
    var_parseval: the same Var by Parseval, (1/N²) Σ_(x≠0) β(x)² ‖J(x)‖² (theory.parity), a check.
    var_by_degree: (d + 1,) the share of `var` carried by the parities of each Hamming weight
        (sums to var). g2: G(w)² = mean over the N inputs of ‖∂p_w(x)/∂w‖².
    mean_grad_norm2: ‖E_s ∇F_s‖². max_abs_pred: max_x |p_w(x)| (the hinge's kink is at |p| = 1).
    n_params: P. param_chunks: how many (N, chunk) slabs were transformed.
    """

    dev2: Tensor
    var: float
    var_parseval: float
    var_by_degree: list[float]
    g2: float
    mean_grad_norm2: float
    max_abs_pred: float
    n_params: int
    param_chunks: int


_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.LeakyReLU, nn.Softplus, nn.GELU)


def jacobians(model: nn.Module, x: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
    """Columns start:stop of the per-input Jacobians ∂p(x_i)/∂w, (m, stop − start), in
    model.named_parameters() order (weights flattened row-major).

    For a Sequential of Linear layers and elementwise activations with one output (the A1 net):
    one batched forward and one backward of Σ_i p(x_i) give every layer's per-input output
    gradient δ_l (m, out) (inputs do not interact), and ∂p/∂W_l = δ_l ⊗ h_(l−1), ∂p/∂b_l = δ_l,
    built only for the rows the column range touches. Other models go through
    probes.target_variance's torch.func path (all columns, then sliced).
    """
    n_params = sum(q.numel() for q in model.parameters())
    stop = n_params if stop is None else stop
    if not (isinstance(model, nn.Sequential)
            and all(isinstance(m, (nn.Linear, *_ELEMENTWISE)) for m in model)):
        return per_sample_jacobians(model, x)[1][:, start:stop]
    with torch.enable_grad():
        h = x
        ins, outs = [], []
        for m in model:
            if isinstance(m, nn.Linear):
                ins.append(h.detach())
                h = torch.nn.functional.linear(h, m.weight.detach())
                if m.bias is not None:
                    h = h + m.bias.detach()
                if not h.requires_grad:  # the first layer: a leaf of its own
                    h.requires_grad_(True)
                outs.append(h)
            else:
                h = m(h)
        deltas = torch.autograd.grad(h.sum(), outs)
    cols, offset = [], 0
    for m, a, g in zip([m for m in model if isinstance(m, nn.Linear)], ins, deltas):
        fan = a.shape[1]
        lo, hi = max(start - offset, 0), min(stop - offset, m.weight.numel())
        if lo < hi:  # rows r0:r1 of ∂p/∂W = δ ⊗ h, flattened, then trimmed to lo:hi
            r0, r1 = lo // fan, -(-hi // fan)
            block = (g[:, r0:r1, None] * a[:, None, :]).reshape(x.shape[0], -1)
            cols.append(block[:, lo - r0 * fan:hi - r0 * fan])
        offset += m.weight.numel()
        if m.bias is not None:
            lo, hi = max(start - offset, 0), min(stop - offset, m.bias.numel())
            if lo < hi:
                cols.append(g[:, lo:hi])
            offset += m.bias.numel()
    return torch.cat(cols, 1).detach()


def parity_gradients(model: nn.Module, d: int, loss: Literal["hinge", "square"], *,
                     input_chunk: int = 4096, memory_bytes: int = 2**28) -> ParityGradients:
    """All 2^d parity gradients of a scalar-output model on {0,1}^d, reduced to their spread.

    Computes in the model's dtype (use float64: the variance sits 2^-d below G²).
    """
    p0 = next(model.parameters())
    x = all_inputs(d, p0.device).to(p0.dtype)  # (N, d), x = 0 first
    n = x.shape[0]
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + input_chunk]).reshape(-1)
                          for i in range(0, n, input_chunk)])  # (N,)
    alpha, beta = affine_loss_derivative(loss, pred)
    n_params = sum(q.numel() for q in model.parameters())
    width = max(1, min(n_params, memory_bytes // (n * p0.element_size())))
    dev2 = torch.zeros(n, dtype=torch.float64, device=p0.device)
    jn2 = torch.zeros(n, dtype=torch.float64, device=p0.device)  # ‖J(x)‖² per input
    mean2 = 0.0
    chunks = 0
    for a in range(0, n_params, width):
        b = min(a + width, n_params)
        slab = torch.empty(n, b - a, dtype=p0.dtype, device=p0.device)  # β(x)·J(x)[a:b]
        mean_part = torch.zeros(b - a, dtype=torch.float64, device=p0.device)
        for i in range(0, n, input_chunk):
            cols = jacobians(model, x[i:i + input_chunk], a, b)  # (m, b − a)
            jn2[i:i + input_chunk] += cols.double().pow(2).sum(1)
            mean_part += (alpha[i:i + input_chunk] @ cols).double()
            slab[i:i + input_chunk] = beta[i:i + input_chunk, None] * cols
        mean_part += slab[0].double()  # + β(0)·J(0)
        mean2 += float(mean_part.div(n).pow(2).sum())
        j0 = slab[0].clone()
        w = walsh_hadamard(slab)  # (N, chunk): Σ_x χ_s(x) β(x) J(x)
        dev2 += (w - j0).double().pow(2).sum(1).div(n * n)
        chunks += 1
    degree = x.sum(1).long()  # Hamming weight of secret s (same bit order as the inputs)
    by_degree = torch.zeros(d + 1, dtype=torch.float64, device=p0.device)
    by_degree.index_add_(0, degree, dev2 / n)
    return ParityGradients(dev2=dev2.cpu(), var=float(dev2.mean()),
                           var_parseval=parity_variance_closed_form(loss, pred, jn2),
                           var_by_degree=by_degree.tolist(), g2=float(jn2.mean()),
                           mean_grad_norm2=mean2, max_abs_pred=float(pred.abs().max()),
                           n_params=n_params, param_chunks=chunks)
