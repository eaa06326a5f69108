"""Exact gradient second moments of the two A6 objectives on a softmax output (SPEC A6).

For logits ℓ with p = softmax(ℓ) and J = ∂p/∂ℓ = diag(p) − ppᵀ (symmetric), the objective −zᵀp
has logit gradient −J z. Its columns are J e_j = p_j (e_j − p), so
‖J e_j‖² = p_j² (1 − 2p_j + ‖p‖²).
- decomposition, z = e_y:  ‖∂‖² = ‖J e_y‖²;
- end-to-end, z_y = 1 and the other z_j i.i.d. uniform ±1: E zzᵀ = I, so E_z ‖∂‖² = ‖J‖_F²
  = Σ_j ‖J e_j‖² — the sum over all k columns where the decomposition has one.
At a uniform p every column has the same norm and the ratio is exactly k; for an affine layer
read on basis vectors the weight gradient is ∂ℓ ⊗ e_i, so the full gradient's squared norm is
2‖∂ℓ‖² (weights + bias) and the factor 2 cancels in the ratio.
"""

from __future__ import annotations

import torch
from torch import Tensor


def simplex_second_moments(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """E‖ĝ‖² of the weight + bias gradient for both objectives, exact in z, averaged over rows.

    logits (n, k) at the n inputs (each input weighted equally), labels (n,) in [0, k).
    Returns {"e2e", "dec", "ratio"} (ratio = e2e / dec).
    """
    p = torch.softmax(logits.double(), dim=-1)  # (n, k)
    col = p * p * (1 - 2 * p + (p * p).sum(-1, keepdim=True))  # ‖J e_j‖², (n, k)
    e2e = float(2 * col.sum(-1).mean())
    dec = float(2 * col.gather(1, labels[:, None].long()).mean())
    return {"e2e": e2e, "dec": dec, "ratio": e2e / dec}
