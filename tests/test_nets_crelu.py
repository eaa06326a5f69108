"""nets/crelu.py: delta-orthogonal kernels and mirrored looks-linear weights (SPEC C5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gradprobe.nets.crelu import CReLU, delta_orthogonal_, looks_linear_


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("c_in, c_out, stride", [(3, 8, 1), (8, 8, 1), (6, 11, 1), (16, 16, 2)])
def test_delta_orthogonal_kernel_preserves_the_norm(c_in, c_out, stride):
    w = torch.empty(c_out, c_in, 3, 3)
    delta_orthogonal_(w, gen(1))
    h = w[:, :, 1, 1]
    assert torch.count_nonzero(w) == torch.count_nonzero(h)  # only the centre tap
    torch.testing.assert_close(h.T @ h, torch.eye(c_in), atol=1e-6, rtol=0)  # orthonormal cols
    x = torch.randn(4, c_in, 9, 9, generator=gen(2))
    y = F.conv2d(x, w, stride=stride, padding=1)
    if stride == 1:  # every pixel's channel vector keeps its length
        torch.testing.assert_close(y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))
    else:  # a strided delta kernel subsamples, then preserves each kept pixel
        torch.testing.assert_close(y.norm(dim=1), x[:, :, ::2, ::2].norm(dim=1))


def test_mirrored_weights_make_crelu_linear():
    w = torch.empty(5, 8, 3, 3)
    looks_linear_(w, gen(0))
    torch.testing.assert_close(w[:, :4], -w[:, 4:])
    x = torch.randn(2, 4, 6, 6, generator=gen(1))
    y = F.conv2d(CReLU()(x), w, padding=1)
    torch.testing.assert_close(y, F.conv2d(x, w[:, :4], padding=1), atol=1e-6, rtol=1e-6)
    fc = torch.empty(10, 12)
    looks_linear_(fc, gen(2))
    v = torch.randn(3, 6, generator=gen(3))
    torch.testing.assert_close(torch.cat([v.relu(), (-v).relu()], 1) @ fc.T, v @ fc[:, :6].T,
                               atol=1e-6, rtol=1e-6)
