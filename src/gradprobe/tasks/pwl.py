"""Piecewise-linear curves and their encoding (Shalev-Shwartz, Shamir, Shammah 2017, ext. §4).

A curve is described by p ∈ R^n: k = 3 distinct positions θ (uniform in {0..n−1}) carry
amplitudes a ~ U[−1, 1], zero elsewhere. The curve is f = W p with W_ij = [i − j + 1]_+, a
continuous piecewise-linear function whose slope changes by a at position θ − 1. Encoding the
curve means recovering p from f: p = W⁻¹ f = U f, where U is the second-difference matrix
(U_ii = 1, U_{i+1,i} = −2, U_{i+2,i} = 1), i.e. a 3-tap convolution with filter (1, −2, 1) on the
input zero-padded on the left by two samples.

Shapes: batches are (..., B, n); a 3-tap filter is (..., 3) and acts on windows
(f_{i−2}, f_{i−1}, f_i), so the target filter is (1, −2, 1).
"""

from __future__ import annotations

import torch

K_KINKS = 3  # number of non-zero entries of p (the paper's k)
TARGET_FILTER = (1.0, -2.0, 1.0)  # taps on (f_{i−2}, f_{i−1}, f_i): U as a convolution


def ramp_matrix(n: int, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """W ∈ R^{n×n}, W_ij = [i − j + 1]_+ (lower triangular; W = L² with L the all-ones triangle)."""
    i = torch.arange(n, device=device)
    return (i[:, None] - i[None, :] + 1).clamp_min(0).to(dtype)


def ramp_inverse(n: int, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """U = W⁻¹: U_ii = 1, U_{i+1,i} = −2, U_{i+2,i} = 1 (the second difference)."""
    u = torch.eye(n, dtype=dtype, device=device)
    u -= 2 * torch.diag(torch.ones(n - 1, dtype=dtype, device=device), -1)
    u += torch.diag(torch.ones(n - 2, dtype=dtype, device=device), -2)
    return u


def sample_p(batch: int, n: int, generator: torch.Generator, k: int = K_KINKS,
             dtype: torch.dtype = torch.float32, lead: tuple[int, ...] = ()) -> torch.Tensor:
    """(*lead, batch, n) targets: k distinct uniform positions with amplitudes U[−1, 1].

    Positions are drawn iid uniform and rows with a repeated position are redrawn (rejection
    sampling: uniform over k-subsets), far cheaper than a sort of n uniforms per row.
    """
    device = generator.device
    shape = (*lead, batch)
    pos = torch.randint(0, n, (*shape, k), generator=generator, device=device)
    while True:
        srt = pos.sort(dim=-1).values
        dup = (srt[..., 1:] == srt[..., :-1]).any(dim=-1)
        count = int(dup.sum())
        if count == 0:
            break
        pos[dup] = torch.randint(0, n, (count, k), generator=generator, device=device)
    amp = torch.rand(*shape, k, generator=generator, device=device, dtype=dtype) * 2 - 1
    p = torch.zeros(*shape, n, dtype=dtype, device=device)
    return p.scatter_(-1, pos, amp)


def curves(p: torch.Tensor) -> torch.Tensor:
    """f = W p for each row of p (..., n), computed as L(L p) since W = L² (L the all-ones lower
    triangle: two cumulative sums, O(n) per curve). Equal to p @ ramp_matrix(n).T."""
    return p.cumsum(dim=-1).cumsum(dim=-1)


def windows(f: torch.Tensor) -> torch.Tensor:
    """(..., n) → (..., n, 3) windows (f_{i−2}, f_{i−1}, f_i), the INPUT zero-padded on the left.

    Padding the input (not the output, as the original code does) lets the 3-tap filter
    (1, −2, 1) reproduce p exactly, including kinks at θ ∈ {0, 1}.
    """
    padded = torch.nn.functional.pad(f, (2, 0))
    return padded.unfold(-1, 3, 1)


def conv3(f: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    """Apply 3-tap filters filt (..., 3) to curves f (..., B, n): (..., B, n)."""
    x = windows(f)  # (..., B, n, 3)
    return torch.einsum("...bnk,...k->...bn", x, filt)


def relative_error(est: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean over curves of ‖est − true‖ / ‖true‖ (last dim is the curve; reduces the batch dim)."""
    return ((est - true).norm(dim=-1) / true.norm(dim=-1)).mean(dim=-1)


def window_moments(p: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2·mean over a batch's windows of x [xᵀ, p_i]: (..., B, n) → (..., 3, 4).

    For a 3-tap filter w the gradient of the batch's mean squared error ‖conv3(f, w) − p‖² is
    mom[..., :3] @ w − mom[..., 3]. Rows (f_{i−2}, f_{i−1}, f_i, p_i) are laid out contiguously
    so that one batched product gives the moments of every leading index (e.g. seed × step).
    """
    lead, (b, n) = p.shape[:-2], p.shape[-2:]
    fp = torch.nn.functional.pad(f, (2, 0))
    rows = torch.stack([fp[..., :n], fp[..., 1:n + 1], fp[..., 2:], p], dim=-3)  # (..., 4, B, n)
    rows = rows.reshape(-1, 4, b * n)
    mom = (rows @ rows.transpose(1, 2)).mul_(2.0 / (b * n))
    return mom[:, :3].reshape(*lead, 3, 4)
