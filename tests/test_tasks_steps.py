"""tasks.steps: the step set, the staircase against brute force, its smoothing."""

from __future__ import annotations

import torch

from gradprobe.tasks import steps as task


def test_step_set() -> None:
    off = torch.tensor(task.OFFSETS)
    assert len(task.OFFSETS) == 52  # 40 coarse + 15 fine − {−5, 0, 5} shared
    assert torch.all(off[1:] > off[:-1])
    assert off[0] == -100 and off[-1] == 95
    for z in (-0.2, 0.1, 0.15, 0.175, -100.0, 95.0, 3.0):
        assert z in task.OFFSETS


def test_staircase_is_max_step_below() -> None:
    """u(r) = max{z ∈ Z : z ≤ r} against a brute-force scan."""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(3, generator=g)
    z = task.step_values(b)
    r = b[:, None] + torch.randn(3, 400, generator=g) * 3
    r[:, :3] = z[:, 40:43]  # exactly on a step: u(z_k) = z_k
    u = task.staircase(r, z)
    brute = torch.where(z[:, None, :] <= r[..., None], z[:, None, :], -torch.inf).amax(-1)
    assert torch.equal(u, brute)


def test_smooth_staircase_tends_to_exact() -> None:
    z = task.step_values(torch.tensor([0.3]))
    r = torch.tensor([[0.3 - 0.1, 0.3 + 0.05, 0.3 + 0.5, 0.3 + 2.5]])  # away from the jumps
    assert torch.allclose(task.smooth_staircase(r, z, 1e-3), task.staircase(r, z), atol=1e-5)
