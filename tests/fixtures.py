"""Shared small problems for the tests (one clearly separated function per problem)."""

from __future__ import annotations

import torch


# ---- line-image tuples (SPEC A4, A5) ------------------------------------------------------
def line_tuples(k: int = 3, b: int = 6, seed: int = 0):
    """b seeded k-tuples of line images: (images (b, k, 28, 28), labels (b, k), parity (b,))."""
    from gradprobe.tasks.lines import sample_tuples

    return sample_tuples(b, k, torch.Generator().manual_seed(seed))
