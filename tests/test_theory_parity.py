"""theory.parity: the Walsh–Hadamard transform and the affine loss derivative (SPEC D2)."""

from __future__ import annotations

import pytest
import torch

from gradprobe.probes.target_variance import loss_derivative
from gradprobe.tasks.parity import parity_matrix
from gradprobe.theory.parity import affine_loss_derivative, hadamard_matrix, walsh_hadamard


@pytest.mark.parametrize("d", [0, 1, 3, 7, 10])
def test_walsh_hadamard_equals_the_parity_matrix_product(d: int) -> None:
    v = torch.randn(2**d, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(d))
    ref = torch.einsum("si,iab->sab", parity_matrix(d).double(), v)
    for group in (1, 4, 6):  # every grouping of the bits gives the same transform
        torch.testing.assert_close(walsh_hadamard(v, group), ref)
    torch.testing.assert_close(hadamard_matrix(min(d, 4)), parity_matrix(min(d, 4)).double())


def test_walsh_hadamard_rejects_non_powers_of_two() -> None:
    with pytest.raises(ValueError, match="2\\^d rows"):
        walsh_hadamard(torch.zeros(6, 2))


@pytest.mark.parametrize("loss", ["hinge", "square"])
def test_loss_derivative_is_affine_in_the_label(loss: str) -> None:
    """∂ℓ/∂ŷ(p, y) = α(p) + β(p)·y for y = ±1, across the hinge's kinks at p = ±1."""
    p = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.7, 1.0, 3.0], dtype=torch.float64)
    alpha, beta = affine_loss_derivative(loss, p)
    for y in (1.0, -1.0):
        ref = loss_derivative(loss, p, torch.full_like(p, y))
        torch.testing.assert_close(alpha + beta * y, ref)
