"""Parity data (SPEC A1): the Walsh–Hadamard matrix of all parities and the labels."""

from __future__ import annotations

import torch

from gradprobe.tasks.parity import all_inputs, parity_labels, parity_matrix


def test_parity_matrix_is_hadamard_and_matches_labels() -> None:
    d = 5
    h = parity_matrix(d)
    assert torch.equal(h @ h.T, 2**d * torch.eye(2**d))  # pairwise orthogonal, E h² = 1
    x = all_inputs(d)
    assert torch.equal(x[0], torch.zeros(d))  # x = 0 first: every parity is +1 there
    v = all_inputs(d)[13]
    assert torch.equal(parity_labels(x, v), h[13])
