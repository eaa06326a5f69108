"""Var(H, F, w) across random targets by unbiased U-statistics (SPEC D3, A9; Theorem 3).

For the square loss ½(p − h)², ∇F_h = E_x[(p − h)·g] with g(x) = ∂p_w(x)/∂w, so the part that
moves with the target is m_h = E_x[h(x)·g(x)] and

    Var = E_h ‖m_h − E_h m_h‖² = E_h ‖m_h‖² − ‖E_h m_h‖².

From T i.i.d. targets sharing n i.i.d. inputs, with a_ti = h_t(x_i)·g_i, S_t = Σ_i a_ti:
    E_h‖m_h‖²  ≈ A = mean_t (‖S_t‖² − Σ_i ‖a_ti‖²) / (n(n − 1))                (pairs i ≠ j)
    ‖E_h m_h‖² ≈ B = mean_(t≠t') (⟨S_t, S_t'⟩ − Σ_i ⟨a_ti, a_t'i⟩) / (n(n − 1))  (i ≠ j, t ≠ t')
and A − B is unbiased (every product pairs independent draws). No per-pair tensor: one (T, n)
by (n, P) product and two (T, T) Gram matrices.

`center` (P,), optional: a constant subtracted from every g_i. When E_x h(x) = 0 for every
target (true for ∏ sign(⟨u, x_l⟩)), m_h does not change, so Var does not either, but the
estimator's noise drops from ~‖E g‖²/n to the gradients' spread; estimate it from inputs
independent of these (then A − B stays exactly unbiased).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class UStatVariance:
    """One unbiased estimate of Var(H, F, w) and of G(w)² = E_x ‖g(x)‖² (uncentred).

    var: A − B above. g2: mean_i ‖g_i‖². second_moment: A (E_h ‖m_h‖²). mean_part: B.
    n_inputs, n_targets: n, T.
    """

    var: float
    g2: float
    second_moment: float
    mean_part: float
    n_inputs: int
    n_targets: int


def ustat_target_variance(jac: Tensor, targets: Tensor,
                          center: Tensor | None = None) -> UStatVariance:
    """jac (n, P) per-input gradients g_i; targets (T, n) values h_t(x_i); both on one device.

    Needs n ≥ 2 and T ≥ 2. Accumulates in float64.
    """
    n, t = jac.shape[0], targets.shape[0]
    if n < 2 or t < 2:
        raise ValueError(f"need ≥ 2 inputs and ≥ 2 targets, got n = {n}, T = {t}")
    j = jac.double()
    g2 = float(j.pow(2).sum(1).mean())
    if center is not None:
        j = j - center.double()
    h = targets.double()
    s = h @ j  # (T, P): S_t
    gram = s @ s.T  # (T, T): ⟨S_t, S_t'⟩
    diag = (h * j.pow(2).sum(1)) @ h.T  # (T, T): Σ_i h_t h_t' ‖g_i‖²
    pairs = gram - diag  # Σ_(i≠j) h_t(x_i) h_t'(x_j) ⟨g_i, g_j⟩
    norm = n * (n - 1)
    a = float(pairs.diagonal().sum()) / t / norm
    b = float(pairs.sum() - pairs.diagonal().sum()) / (t * (t - 1)) / norm
    return UStatVariance(var=a - b, g2=g2, second_moment=a, mean_part=b, n_inputs=n,
                         n_targets=t)
