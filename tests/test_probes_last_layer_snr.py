"""The streaming last-layer SNR against per-sample gradients from a brute-force loop."""

from __future__ import annotations

import pytest
import torch

from gradprobe.nets.tuple_nets import make_tuple_net
from gradprobe.probes.last_layer_snr import GradMoments, last_layer_grads, stream_snr
from gradprobe.probes.snr import snr_from_samples
from gradprobe.training.tuple_losses import decomposition_loss, end_to_end_loss
from tests.fixtures import line_tuples


def test_closed_form_grads_match_an_autograd_loop_on_the_tuple_net() -> None:
    """g_i = Σ_j δ_ij [h_ij, 1] equals each tuple's own backward pass through the whole net."""
    k, b = 3, 7
    net = make_tuple_net(k, torch.Generator().manual_seed(0))
    x, yi, yt = line_tuples(k, b, seed=1)
    with torch.no_grad():
        h = net.n1.penultimate(x.reshape(-1, 1, 28, 28)).reshape(b, k, -1)
    s = net.n1.score(h).squeeze(-1).detach().requires_grad_(True)
    loss = decomposition_loss(net.n2(s), s, yt, yi) * b  # Σ_i ℓ_i
    (delta,) = torch.autograd.grad(loss, s)
    got = last_layer_grads(delta, h)
    for i in range(b):
        net.zero_grad()
        decomposition_loss(*net(x[i : i + 1]), yt[i : i + 1], yi[i : i + 1]).backward()
        ref = torch.cat([net.n1.score.weight.grad[0], net.n1.score.bias.grad])
        torch.testing.assert_close(got[i], ref, rtol=1e-5, atol=1e-7)
    e2e = end_to_end_loss(net.n2(s), yt) * b
    (d2,) = torch.autograd.grad(e2e, s)
    net.zero_grad()
    end_to_end_loss(net(x[:1])[0], yt[:1]).backward()
    torch.testing.assert_close(last_layer_grads(d2, h, bias=False)[0],
                               net.n1.score.weight.grad[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mu", [0.0, 0.4])
def test_streamed_moments_equal_snr_from_samples(mu: float) -> None:
    """Chunked sums reproduce every estimate of snr_from_samples on the same samples."""
    g = torch.Generator().manual_seed(2)
    G = mu + torch.linspace(0.5, 2.0, 11) * torch.randn(3000, 11, generator=g)
    G[:, 0] += 3.0 * G[:, 1]  # correlated coordinates
    acc = GradMoments(11)
    for part in G.split(457):
        acc.add(part)
    got, ref = acc.result(), snr_from_samples(G)
    assert got.n == ref.n and got.below_noise == ref.below_noise
    for f in ("signal", "noise", "noise_se", "signal_se", "snr"):
        assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=1e-4, abs=1e-9), f
    # the authors' formula: S = ‖ḡ‖², Noise = mean‖g‖² − S²
    a = acc.authors()
    Gd = G.double()
    s = float(Gd.mean(0) @ Gd.mean(0))
    assert a["signal"] == pytest.approx(s)
    assert a["noise"] == pytest.approx(float((Gd * Gd).sum(1).mean()) - s**2)


def test_stream_snr_over_chunks_of_delta_and_features() -> None:
    g = torch.Generator().manual_seed(3)
    delta, h = torch.randn(500, 2, generator=g), torch.randn(500, 2, 4, generator=g)
    r, _ = stream_snr(((delta[a : a + 64], h[a : a + 64]) for a in range(0, 500, 64)), p=5)
    ref = snr_from_samples(torch.cat([(delta[..., None] * h).sum(1), delta.sum(1, keepdim=True)],
                                     1))
    assert r.signal == pytest.approx(ref.signal, rel=1e-6, abs=1e-12)
    assert r.noise == pytest.approx(ref.noise, rel=1e-6)
