"""Mean-field signal propagation in wide random nets (Poole et al. 2016; Schoenholz et al. 2017).

A fully connected net h_l = W_l φ(h_{l−1}) + b_l, W_l ~ N(0, σ_w²/N), b_l ~ N(0, σ_b²), first layer
h_1 = W_1 x + b_1 on inputs with q_0 = ‖x‖²/N_0. In the infinite-width limit every pre-activation
is Gaussian and, with E over z ~ N(0, 1) (Gauss–Hermite quadrature),

    length map      q_l = σ_w² E[φ(√q_{l−1} z)²] + σ_b²                 (Poole Eq. 3)
    fixed point     q* = lim q_l;   χ₁ = σ_w² E[φ′(√q* z)²]               (Eq. 6; Schoenholz Eq. 5)
    correlation map c_l = (σ_w² E[φ(u₁)φ(u₂)] + σ_b²) / q_l,  u₁ = √q z₁,
                    u₂ = √q (c_{l−1} z₁ + √(1−c_{l−1}²) z₂)                 (Poole Eq. 4)
    depth scale     ξ_c = −1 / ln χ_c,  χ_c = σ_w² E[φ′(u₁)φ′(u₂)] at (q*, c*)  (Schoenholz Eq. 9)

Back-propagating a vector through layer l multiplies its squared norm by χ(q_l) = σ_w² E[φ′(√q_l
z)²] (Schoenholz §3, gradient independence), so log ‖∂ℓ/∂h_l‖ grows by ½ ln χ(q_l) per layer
toward the input; χ₁ = 1 is the edge of chaos. Near it q_l reaches q* only as a power of l, so a
finite-depth net follows the layer-wise χ(q_l), not χ₁ (`layerwise_slope`).

Smooth activations only (tanh, erf, linear): Gauss–Hermite converges slowly across a kink, so
ReLU is left out rather than integrated inaccurately. Pure numpy; imports nothing from gradprobe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

Array = np.ndarray


def _tanh_prime(x: Array) -> Array:
    return 1.0 / np.cosh(x) ** 2


def _erf(x: Array) -> Array:
    return np.vectorize(math.erf, otypes=[float])(x)


ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "tanh": (np.tanh, _tanh_prime),
    "linear": (lambda x: x, lambda x: np.ones_like(x)),
    "erf": (_erf, lambda x: 2.0 / math.sqrt(math.pi) * np.exp(-x * x)),
}


def _act(phi: str) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
    if phi not in ACTIVATIONS:
        raise ValueError(f"unknown activation {phi!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[phi]


@lru_cache(maxsize=8)
def gauss_hermite(n: int = 101) -> tuple[Array, Array]:
    """Nodes z and weights w with Σ w f(z) ≈ E f(z), z ~ N(0, 1) (probabilists' Hermite).
    Cached: treat the arrays as read-only."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    z.flags.writeable = False
    w = w / math.sqrt(2.0 * math.pi)
    w.flags.writeable = False
    return z, w


def gaussian_mean(f: Callable[[Array], Array], q: float | Array, n: int = 101) -> Array:
    """E f(√q z) for z ~ N(0, 1); q scalar or array (broadcast: result has q's shape)."""
    z, w = gauss_hermite(n)
    q = np.asarray(q, dtype=float)
    return (f(np.sqrt(q)[..., None] * z) * w).sum(-1)


def length_step(q: float | Array, sw2: float, sb2: float, phi: str = "tanh") -> Array:
    """One step of the length map: σ_w² E[φ(√q z)²] + σ_b²."""
    f, _ = _act(phi)
    return sw2 * gaussian_mean(lambda u: f(u) ** 2, q) + sb2


def length_map(q0: float, sw2: float, sb2: float, depth: int, phi: str = "tanh") -> Array:
    """q_1..q_depth (shape (depth,)) from input length q0: q_1 = σ_w² q0 + σ_b² (linear first
    layer on the inputs), then the length map."""
    q = np.empty(depth)
    q[0] = sw2 * q0 + sb2
    for l in range(1, depth):
        q[l] = length_step(q[l - 1], sw2, sb2, phi)
    return q


def fixed_point_q(sw2: float, sb2: float, phi: str = "tanh", q_max: float = 1e4,
                  tol: float = 1e-13) -> float:
    """q*: the largest root of σ_w² E[φ(√q z)²] + σ_b² − q (the stable one for tanh).

    Scanned on a log grid of q in [1e-12, q_max], then bisected. When the map lies below the
    identity everywhere (tanh with σ_b = 0 and σ_w² ≤ 1) q* = 0.
    """
    grid = np.concatenate([[0.0], np.logspace(-12, math.log10(q_max), 400)])
    g = length_step(grid, sw2, sb2, phi) - grid
    pos = np.nonzero(g > 0)[0]
    if len(pos) == 0:
        return 0.0
    i = pos[-1]
    if i == len(grid) - 1:
        return math.inf  # grows past q_max (e.g. ReLU above σ_w² = 2)
    lo, hi = grid[i], grid[i + 1]
    while hi - lo > tol * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if length_step(mid, sw2, sb2, phi) - mid > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def chi(q: float | Array, sw2: float, phi: str = "tanh") -> Array:
    """χ(q) = σ_w² E[φ′(√q z)²]: the factor on ‖δ‖² per layer at length q."""
    _, d = _act(phi)
    return sw2 * gaussian_mean(lambda u: d(u) ** 2, q)


def chi1(sw2: float, sb2: float, phi: str = "tanh") -> float:
    """χ₁ = χ(q*): > 1 chaotic (gradients explode), < 1 ordered (they vanish); ∞ when q* is
    (the forward pass itself explodes, e.g. a linear net above σ_w² = 1)."""
    q = fixed_point_q(sw2, sb2, phi)
    return math.inf if math.isinf(q) else float(chi(q, sw2, phi))


def _pair_mean(f: Callable[[Array, Array], Array], q: float, c: float, n: int = 61) -> float:
    """E f(u₁, u₂) with (u₁, u₂) Gaussian, variances q, correlation c (2-D Gauss–Hermite)."""
    z, w = gauss_hermite(n)
    z1, z2 = z[:, None], z[None, :]
    c = min(max(c, -1.0), 1.0)
    s = math.sqrt(q)
    u1 = s * z1
    u2 = s * (c * z1 + math.sqrt(max(0.0, 1.0 - c * c)) * z2)
    return float((f(u1, u2) * w[:, None] * w[None, :]).sum())


def correlation_step(c: float, q: float, q_next: float, sw2: float, sb2: float,
                     phi: str = "tanh") -> float:
    """c_{l} from c_{l−1} at length q = q_{l−1}: (σ_w² E[φ(u₁)φ(u₂)] + σ_b²) / q_l."""
    f, _ = _act(phi)
    if q_next <= 0:
        return 1.0
    return (sw2 * _pair_mean(lambda a, b: f(a) * f(b), q, c) + sb2) / q_next


def correlation_map(c1: float, q0: float, sw2: float, sb2: float, depth: int,
                    phi: str = "tanh") -> Array:
    """c_1..c_depth (shape (depth,)) for two inputs of equal length q0 whose first-layer
    pre-activations have correlation c1, using the layer-wise q_l (not q*)."""
    q = length_map(q0, sw2, sb2, depth, phi)
    c = np.empty(depth)
    c[0] = c1
    for l in range(1, depth):
        c[l] = correlation_step(c[l - 1], q[l - 1], q[l], sw2, sb2, phi)
    return c


def first_layer_correlation(c_in: float, q0: float, sw2: float, sb2: float) -> float:
    """Correlation of h_1 = W x + b for two inputs of length q0 and correlation c_in."""
    return (sw2 * q0 * c_in + sb2) / (sw2 * q0 + sb2)


def fixed_point_c(sw2: float, sb2: float, phi: str = "tanh", iters: int = 2000,
                  tol: float = 1e-12) -> float:
    """c*: the correlation map at q* iterated from c = 0 (1 in the ordered phase)."""
    q = fixed_point_q(sw2, sb2, phi)
    if q <= 0:
        return 1.0
    c = 0.0
    for _ in range(iters):
        new = correlation_step(c, q, q, sw2, sb2, phi)
        if abs(new - c) < tol:
            return float(min(new, 1.0))
        c = new
    return float(min(c, 1.0))


def chi_c(sw2: float, sb2: float, phi: str = "tanh") -> float:
    """χ_c = σ_w² E[φ′(u₁)φ′(u₂)] at (q*, c*): the slope of the c-map at its fixed point."""
    _, d = _act(phi)
    q = fixed_point_q(sw2, sb2, phi)
    c = fixed_point_c(sw2, sb2, phi)
    return sw2 * _pair_mean(lambda a, b: d(a) * d(b), q, c)


def depth_scale(sw2: float, sb2: float, phi: str = "tanh") -> float:
    """ξ_c = −1/ln χ_c (Schoenholz Eq. 9): |c_l − c*| ~ exp(−l/ξ_c); ∞ at criticality."""
    x = chi_c(sw2, sb2, phi)
    return math.inf if x >= 1.0 - 1e-12 else -1.0 / math.log(x)


def layerwise_chi(q0: float, sw2: float, sb2: float, depth: int, phi: str = "tanh") -> Array:
    """χ(q_l) for l = 1..depth: the per-layer factor on ‖∂ℓ/∂h_l‖² at finite depth."""
    return chi(length_map(q0, sw2, sb2, depth, phi), sw2, phi)


def log_grad_norms(q0: float, sw2: float, sb2: float, layers: int, phi: str = "tanh") -> Array:
    """Predicted log ‖∂ℓ/∂h_l‖, l = 1..layers (shape (layers,)), for a unit vector fed back at
    the top pre-activation h_layers (0 there): log‖δ_l‖ = ½ Σ_{k=l}^{layers−1} ln χ(q_k)."""
    lc = 0.5 * np.log(layerwise_chi(q0, sw2, sb2, layers, phi))
    out = np.zeros(layers)
    out[:-1] = np.cumsum(lc[:-1][::-1])[::-1]
    return out


def fit_slope(logs: Array, first: int, last: int) -> Array:
    """Least-squares growth of log‖δ‖ per backpropagation step, over the steps first..last
    from the top (step k is layer l = layers − k; inclusive). logs: (..., layers), index l−1."""
    y = np.asarray(logs)
    n = y.shape[-1]
    if not 0 <= first < last <= n - 1:
        raise ValueError(f"fit steps must satisfy 0 ≤ first < last ≤ {n - 1}, got {first}, {last}")
    steps = np.arange(first, last + 1, dtype=float)
    y = y[..., n - 1 - steps.astype(int)]
    x = steps - steps.mean()
    return ((y - y.mean(-1, keepdims=True)) * x).sum(-1) / (x * x).sum()


def layerwise_slope(q0: float, sw2: float, sb2: float, layers: int, first: int, last: int,
                    phi: str = "tanh") -> float:
    """The layer-wise theory's fitted slope over backprop steps first..last (see fit_slope)."""
    return float(fit_slope(log_grad_norms(q0, sw2, sb2, layers, phi), first, last))


def fixed_point_slope(sw2: float, sb2: float, phi: str = "tanh") -> float:
    """½ ln χ₁: the slope an infinitely deep net would show."""
    return 0.5 * math.log(chi1(sw2, sb2, phi))


def crossing(xs: Array, ys: Array) -> float:
    """The first x where ys crosses 0 going up, by linear interpolation (NaN if none)."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    for i in range(len(xs) - 1):
        if ys[i] <= 0 < ys[i + 1] or (ys[i] < 0 <= ys[i + 1]):
            return float(xs[i] - ys[i] * (xs[i + 1] - xs[i]) / (ys[i + 1] - ys[i]))
    return math.nan


def critical_sw2(sb2: float, phi: str = "tanh", lo: float = 0.5, hi: float = 4.0,
                 tol: float = 1e-8) -> float:
    """σ_w² on the critical line χ₁(σ_w², σ_b²) = 1 (bisection; χ₁ rises through 1 there)."""
    f_lo = chi1(lo, sb2, phi) - 1.0
    if f_lo > 0:
        return math.nan
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if chi1(mid, sb2, phi) - 1.0 > 0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)
