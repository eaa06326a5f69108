"""Signal propagation through random fully connected nets, measured (SPEC E2).

For nets h_1 = W_1 x + b_1, h_l = W_l φ(h_{l−1}) + b_l (l = 2..layers), W_l = σ_w Z_l/√N with
Z_l i.i.d. N(0, 1), b_l = σ_b ζ_l, this measures per layer: the length q_l = ‖h_l‖²/N, the
correlation c_l of h_l between two inputs, and log ‖∂ℓ/∂h_l‖ for a random unit vector fed back
at h_layers (ℓ = uᵀh_layers). The mean-field theory of these is gradprobe.theory.meanfield.

Vectorised: every (σ_w², σ_b²) configuration of one net shares its Z_l and ζ_l (common random
numbers: the curves over σ_w² are smooth per net), and all configurations and inputs of a chunk
of nets go through one batched matmul per layer. The backward pass regenerates Z_l from a
per-(net chunk, layer) seed instead of storing all weights; it stores φ′(h_l) (chunk × configs
× inputs × N per layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gradprobe.runtime import derive_seed


@dataclass(frozen=True)
class Propagation:
    """Per net k, configuration j (σ_w²_j, σ_b²_j) and layer l = 1..layers.

    q: (K, J, layers) ‖h_l‖²/N, mean over inputs.
    c: (K, J, layers) correlation of h_l between the inputs of each pair, mean over pairs.
    log_grad: (K, J, layers) log ‖∂ℓ/∂h_l‖, mean over inputs (0 at l = layers).
    """

    q: Tensor
    c: Tensor
    log_grad: Tensor


def _weights(seed: int, chunk: int, layer: int, k: int, n_in: int, n: int,
             dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, "propagation", chunk, layer))
    z = torch.randn(k, n, n_in, generator=g, dtype=dtype, device=device)
    zeta = torch.randn(k, 1, n, generator=g, dtype=dtype, device=device)
    return z, zeta


@torch.no_grad()
def propagate(
    inputs: Tensor,
    sw2: Sequence[float],
    sb2: Sequence[float],
    layers: int,
    nets: int,
    *,
    seed: int,
    phi: Callable[[Tensor], Tensor] = torch.tanh,
    dphi: Callable[[Tensor], Tensor] = lambda h: 1.0 - torch.tanh(h) ** 2,
    chunk: int = 4,
    dtype: torch.dtype = torch.float32,
) -> Propagation:
    """Measure q_l, c_l and log‖∂ℓ/∂h_l‖ on `nets` random nets of width N = inputs.shape[1].

    inputs: (B, N) with B even; pairs are rows (0, 1), (2, 3), …. sw2, sb2: the J
    configurations (same length). Each net's random unit vectors u (B, N) are shared by all
    configurations. Returns a Propagation (float64 tensors on the CPU).
    """
    b, n = inputs.shape
    if b < 2 or b % 2:
        raise ValueError(f"inputs must hold an even number ≥ 2 of rows (pairs), got {b}")
    if len(sw2) != len(sb2) or not len(sw2):
        raise ValueError("sw2 and sb2 must be non-empty and of the same length")
    device = inputs.device
    sw = torch.tensor([math.sqrt(v) for v in sw2], dtype=dtype, device=device)
    sb = torch.tensor([math.sqrt(v) for v in sb2], dtype=dtype, device=device)
    j = len(sw2)
    x = inputs.to(dtype)
    out_q, out_c, out_g = [], [], []
    for start in range(0, nets, chunk):
        ci = start // chunk
        k = min(chunk, nets - start)
        scale = (sw / math.sqrt(n)).repeat_interleave(b).view(1, j * b, 1)  # (1, J·B, 1)
        bias = sb.repeat_interleave(b).view(1, j * b, 1)
        q = torch.empty(k, j, layers, dtype=torch.float64)
        c = torch.empty(k, j, layers, dtype=torch.float64)
        derivs: list[Tensor] = []
        h = None
        for l in range(layers):
            z, zeta = _weights(seed, ci, l, k, n, n, dtype, device)
            if l == 0:
                pre = torch.matmul(x, z.transpose(1, 2))  # (k, B, N): shared by configs
                pre = pre.repeat(1, j, 1)
            else:
                pre = torch.bmm(phi(h), z.transpose(1, 2))
            h = pre * scale + bias * zeta  # (k, J·B, N)
            if l < layers - 1:
                derivs.append(dphi(h))
            hv = h.view(k, j, b, n).double()
            sq = (hv * hv).sum(-1)  # (k, J, B)
            q[:, :, l] = (sq / n).mean(-1).cpu()
            dots = (hv[:, :, 0::2] * hv[:, :, 1::2]).sum(-1)
            c[:, :, l] = (dots / (sq[:, :, 0::2] * sq[:, :, 1::2]).sqrt()).mean(-1).cpu()
        g_gen = torch.Generator(device=device)
        g_gen.manual_seed(derive_seed(seed, "propagation-u", ci))
        u = torch.randn(k, b, n, generator=g_gen, dtype=dtype, device=device)
        u = (u / u.norm(dim=-1, keepdim=True)).repeat(1, j, 1)  # (k, J·B, N)
        logn = torch.zeros(k, j * b, layers, dtype=torch.float64, device=device)
        g = u
        acc = torch.zeros(k, j * b, dtype=torch.float64, device=device)
        for l in range(layers - 1, 0, -1):  # δ_{l−1} = φ′(h_{l−1}) ⊙ W_lᵀ δ_l (0-based l)
            z, _ = _weights(seed, ci, l, k, n, n, dtype, device)
            g = torch.bmm(g, z) * scale * derivs[l - 1]
            nrm = g.norm(dim=-1)
            acc = acc + nrm.double().log()
            logn[:, :, l - 1] = acc
            g = g / nrm.unsqueeze(-1)  # renormalised: no under/overflow over many layers
        out_q.append(q)
        out_c.append(c)
        out_g.append(logn.view(k, j, b, layers).mean(2).cpu())
    return Propagation(q=torch.cat(out_q), c=torch.cat(out_c), log_grad=torch.cat(out_g))


def correlated_pairs(n: int, pairs: int, c: float, generator: torch.Generator,
                     dtype: torch.dtype = torch.float64) -> Tensor:
    """(2·pairs, N) Gaussian inputs with ‖x‖² = N exactly and correlation exactly c in each pair
    (the second row is c·x̂ + √(1−c²)·ŷ, ŷ ⟂ x̂)."""
    a = torch.randn(pairs, 2, n, generator=generator, dtype=dtype, device=generator.device)
    x = a[:, 0] / a[:, 0].norm(dim=-1, keepdim=True)
    y = a[:, 1] - (a[:, 1] * x).sum(-1, keepdim=True) * x
    y = y / y.norm(dim=-1, keepdim=True)
    second = c * x + math.sqrt(max(0.0, 1 - c * c)) * y
    return (torch.stack([x, second], 1) * math.sqrt(n)).reshape(2 * pairs, n)
