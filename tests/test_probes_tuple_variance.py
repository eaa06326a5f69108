"""probes.tuple_variance: the U-statistic against explicit pair sums, exact enumeration of a
finite population, and an additive predictor whose variance is exactly zero (SPEC D3)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradprobe.nets.vector_tuples import VectorTupleNet
from gradprobe.probes.target_variance import per_sample_jacobians
from gradprobe.probes.tuple_variance import ustat_target_variance
from gradprobe.tasks.gaussian_tuples import product_sign_targets, sample_tuples
from gradprobe.tasks.periodic import sample_directions


def test_ustatistic_equals_explicit_pair_sums() -> None:
    g = torch.Generator().manual_seed(0)
    n, t, p = 6, 4, 3
    jac = torch.randn(n, p, dtype=torch.float64, generator=g)
    h = torch.randn(t, n, dtype=torch.float64, generator=g)
    a = [[h[s, i] * jac[i] for i in range(n)] for s in range(t)]
    same = sum(float(a[s][i] @ a[s][j]) for s in range(t) for i in range(n) for j in range(n)
               if i != j) / (t * n * (n - 1))
    cross = sum(float(a[s][i] @ a[r][j]) for s in range(t) for r in range(t) if s != r
                for i in range(n) for j in range(n) if i != j) / (t * (t - 1) * n * (n - 1))
    est = ustat_target_variance(jac, h)
    assert est.second_moment == pytest.approx(same, rel=1e-12)
    assert est.mean_part == pytest.approx(cross, rel=1e-12)
    assert est.var == pytest.approx(same - cross, rel=1e-10)
    assert est.g2 == pytest.approx(float(jac.pow(2).sum(1).mean()))


def _population(k: int, d: int, m: int, q: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A net, m tuples closed under flipping the first part (so E_x h_u = 0 for every u), and
    q directions: a finite population whose Var is enumerable."""
    g = torch.Generator().manual_seed(k)
    net = VectorTupleNet(d, k, g, hidden=7).double()
    x = sample_tuples(m, k, d, g).double()
    flipped = x.clone()
    flipped[:, 0] *= -1
    return net, torch.cat([x, flipped]), sample_directions(q, d, 1.0, g).double()


def _exact_var(net: VectorTupleNet, x: torch.Tensor, u: torch.Tensor) -> float:
    m = product_sign_targets(u, x) @ net.per_sample_grads(x) / x.shape[0]  # (q, P): m_u
    return float((m - m.mean(0)).pow(2).sum(1).mean())


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("centred", [False, True])
def test_ustatistic_is_unbiased_on_an_enumerable_population(k: int, centred: bool) -> None:
    """Mean of many estimates from i.i.d. draws (with replacement) lands on the enumerated Var."""
    net, x, u = _population(k, d=3, m=8, q=5)
    exact = _exact_var(net, x, u)
    jac_all = net.per_sample_grads(x)
    center = jac_all.mean(0) + 0.3 if centred else None  # any constant: E_x h_u = 0 here
    h_all = product_sign_targets(u, x)
    g = torch.Generator().manual_seed(7)
    reps = []
    for _ in range(600):
        i = torch.randint(0, x.shape[0], (12,), generator=g)
        t = torch.randint(0, u.shape[0], (4,), generator=g)
        reps.append(ustat_target_variance(jac_all[i], h_all[t][:, i], center=center).var)
    est = torch.tensor(reps, dtype=torch.float64)
    se = float(est.std()) / math.sqrt(len(reps))
    assert exact > 0
    assert abs(float(est.mean()) - exact) < 4 * se


class _Additive(nn.Module):
    """p(x) = Σ_l f(x_l): no coupling between the parts."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(d, 5), nn.Tanh(), nn.Linear(5, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x).squeeze(-1).sum(-1)


def test_additive_predictor_has_zero_variance_for_k_at_least_2() -> None:
    """E_u ‖m_u − E m‖² = 0 for k ≥ 2 (each m_u is a sum of terms with a factor E sign = 0),
    so the unbiased estimate is zero within its noise; for k = 1 it is clearly positive."""
    d, n, t = 3, 4096, 32
    out = {}
    for k in (1, 2):
        torch.manual_seed(k)
        net = _Additive(d).double()
        g = torch.Generator().manual_seed(10 + k)
        reps = []
        for _ in range(6):
            x = sample_tuples(n, k, d, g).double()
            jac = per_sample_jacobians(net, x)[1]
            u = sample_directions(t, d, 1.0, g).double()
            c = per_sample_jacobians(net, sample_tuples(512, k, d, g).double())[1].mean(0)
            reps.append(ustat_target_variance(jac, product_sign_targets(u, x), c).var)
        r = torch.tensor(reps)
        out[k] = (float(r.mean()), float(r.std()) / math.sqrt(len(reps)))
    assert out[1][0] > 10 * out[1][1]  # k = 1: resolved above zero
    assert abs(out[2][0]) < 4 * out[2][1] + 1e-12  # k = 2: zero within noise
    assert abs(out[2][0]) < 0.01 * out[1][0]
