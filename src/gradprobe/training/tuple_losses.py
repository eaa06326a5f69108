"""The two losses of the tuple experiments (Shalev-Shwartz et al. 2017, §3.1; SPEC A4, A5).

Losses (hinge, as in the authors' code):
    end-to-end      mean_b [1 − ŷ_b·ỹ_b]_+                        (ỹ = ∏_j y_j)
    decomposition   end-to-end + w · mean_{b,j} [1 − s_bj·y_bj]_+  (w = 1 in the paper)
"""

from __future__ import annotations

from torch import Tensor

from gradprobe.training.metrics import hinge


def end_to_end_loss(output: Tensor, y_tuple: Tensor) -> Tensor:
    """Mean hinge of the tuple output against the parity label. output, y_tuple: (b,)."""
    return hinge(output, y_tuple)


def decomposition_loss(output: Tensor, scores: Tensor, y_tuple: Tensor, y_images: Tensor,
                       weight: float = 1.0) -> Tensor:
    """End-to-end loss + weight · mean per-image hinge of N1's scores (b, k) against y (b, k).

    With weight = 0 it is exactly the end-to-end loss.
    """
    loss = end_to_end_loss(output, y_tuple)
    if weight == 0.0:
        return loss
    return loss + weight * hinge(scores.reshape(-1), y_images.reshape(-1))
