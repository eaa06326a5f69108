"""E2: finite-net measurement (probes/propagation.py) against mean-field theory, and the run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradprobe.experiments import signal_propagation as sp
from gradprobe.probes.propagation import correlated_pairs, propagate
from gradprobe.runs.store import execute, resolve
from gradprobe.theory import meanfield as mf


def test_correlated_pairs_are_exact() -> None:
    x = correlated_pairs(300, 3, 0.4, torch.Generator().manual_seed(0))
    assert x.shape == (6, 300)
    torch.testing.assert_close(x.pow(2).sum(1), torch.full((6,), 300.0, dtype=torch.float64))
    cos = (x[0::2] * x[1::2]).sum(1) / 300
    torch.testing.assert_close(cos, torch.full((3,), 0.4, dtype=torch.float64))


def test_wide_shallow_net_matches_mean_field_theory() -> None:
    """Width 1000, 6 layers: q_l, c_l and log‖δ_l‖ within a few finite-width standard errors of
    the length map, the iterated c-map and ½ Σ ln χ(q_l)."""
    n, layers = 1000, 6
    x = correlated_pairs(n, 8, 0.3, torch.Generator().manual_seed(1))
    configs = [(1.5, 0.05), (0.8, 0.0), (2.5, 0.1)]
    p = propagate(x, [w for w, _ in configs], [b for _, b in configs], layers, nets=8, seed=7)
    for j, (w, b) in enumerate(configs):
        q_th = mf.length_map(1.0, w, b, layers)
        c_th = mf.correlation_map(mf.first_layer_correlation(0.3, 1.0, w, b), 1.0, w, b, layers)
        g_th = mf.log_grad_norms(1.0, w, b, layers)
        np.testing.assert_allclose(p.q[:, j].mean(0).numpy(), q_th, rtol=0.03)
        np.testing.assert_allclose(p.c[:, j].mean(0).numpy(), c_th, atol=0.02)
        np.testing.assert_allclose(p.log_grad[:, j].mean(0).numpy(), g_th, atol=0.03)


def test_common_random_numbers_make_slopes_monotone_in_sigma_w() -> None:
    x = correlated_pairs(200, 2, 0.5, torch.Generator().manual_seed(2))
    sw2 = [0.8, 1.0, 1.2, 1.4]
    p = propagate(x, sw2, [0.0] * 4, 30, nets=2, seed=3)
    slopes = mf.fit_slope(p.log_grad.numpy(), 2, 29)  # (nets, configs)
    assert (np.diff(slopes, axis=1) > 0).all()


def test_worst_layer_picks_the_widest_reaching_interval() -> None:
    rng = np.random.default_rng(0)
    dev = rng.normal(0, 0.001, size=(5, 10))
    dev[:, 7] += 0.04
    e = sp.worst_layer(dev)
    assert e.value == pytest.approx(dev[:, 7].mean())


def test_smoke_run(tmp_path) -> None:
    s = execute(resolve("signal_propagation", "smoke", out=tmp_path, device="cpu"), quiet=True)
    assert s["status"] == "complete", s.get("error")
    assert "phase_diagram.png" in s["figures"]
    ids = {c["id"]: c for c in s["claims"]}
    assert set(ids) == {"criticality_located", "depth_scale_matches"}
    assert all(c["verdict"] in ("holds", "fails", "inconclusive", "not_applicable")
               for c in ids.values())
    crit = s["results"]["theory"]["critical"]["0.0"]["critical_sw2"]
    assert crit == pytest.approx(1.0, abs=1e-6)
    assert math.isfinite(s["results"]["measured"]["configs"][0]["slope"][0])
