"""A5 `snr` — signal-to-noise ratio of the gradient against the tuple length k.

Shalev-Shwartz, Shamir & Shammah 2017, "Failures of Gradient-Based Deep Learning", §3.2, Fig. 4.
At initialisation, take the single-tuple gradient ĝ of each loss (end-to-end; decomposition)
with respect to the weights of N1's last layer (the "score" layer, 100 weights + 1 bias).
Signal = ‖E ĝ‖², noise = E‖ĝ − E ĝ‖². The paper finds the end-to-end SNR falling to "below
the precision of 32-bit floats" from k = 3 (visually zero from k = 2) while the decomposition's
stays about constant. Through N2 the end-to-end gradient for image j is multiplied by the other
images' labels, which a random N1 barely predicts, so its signal shrinks geometrically with k.

How it is measured (SPEC D2). The score layer's per-tuple gradient is closed-form in N1's
penultimate features, g = Σ_j δ_j [h_j, 1] with δ_j = ∂ℓ/∂s_j, so
`gradprobe.probes.last_layer_snr` streams Σ g, Σ ‖g‖², Σ g gᵀ … over chunks of tuples (no
per-sample tensor, no vmap) and returns the unbiased signal ‖ḡ‖² − tr S/n, the noise tr S and
their standard errors. N1's forward is the cost (~4 MFLOP an image), so each initialisation
renders a **pool** of `pool` distinct line images once, computes their features once, and draws
the k images of every tuple uniformly from the pool (with replacement). One N1 per
initialisation serves every k (N1 is initialised before N2 from the same seeded generator, so it
is the same net at every k; N2(k) differs). The estimate then targets the SNR over the pool; to
show the pool is large enough, initialisation 0's end-to-end estimates at k = 1 and 3 are
repeated with tuples drawn from the pool's first half (`pool_check`): `results.pool_check` gives
both and their difference in standard errors (z). SNR_e2e(1) and SNR_e2e(3), whose ratio the
collapse claim judges, get `tuples_collapse` tuples (their standard error falls as 1/n while the
signal is unresolved); every other estimate gets `tuples`. The authors' noise formula
(`Noise = S2 − S**2`, S = ‖ḡ‖² already a squared norm) is reported beside the unbiased noise
(`authors` in every row).

Claims (empirical, decided over `inits` initialisations with a Student t interval):
`end_to_end_snr_collapses` judges the per-initialisation ratio SNR_e2e(3)/SNR_e2e(1) (holds when
the interval's upper end is ≤ 10⁻²); `decomposition_snr_stable` judges SNR_dec(k)/SNR_dec(1)
≥ 0.5 at every k. Quick (99 CPU-s): both hold; ratio −6.8e-4, interval [−4.7e-3, 3.3e-3].
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from gradprobe import plots
from gradprobe.claims import Claim, Part, judge, not_applicable, t_interval
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.tuple_nets import TupleNet, make_tuple_net
from gradprobe.probes.last_layer_snr import GradMoments, last_layer_grads
from gradprobe.tasks.lines import LineParams, draw_lines, sample_params
from gradprobe.training.tuple_losses import decomposition_loss, end_to_end_loss

METHODS = ("e2e", "dec")
LABELS = {"e2e": "end-to-end", "dec": "decomposition"}
SCORE_LAYER = ("n1.score.weight", "n1.score.bias")  # N1's last layer (paper §3.2)
COLLAPSE_KS = (1, 3)  # SNR_e2e at these k make the collapse claim's ratio


@dataclass(frozen=True)
class Config(ExperimentConfig):
    ks: tuple[int, ...] = (1, 2, 3, 4, 5)  # tuple lengths k (paper Fig. 4: 1..4)
    tuples: int = 200_000  # tuples per SNR estimate (streamed), every k and method
    tuples_collapse: int = 2_000_000  # tuples for SNR_e2e(1) and SNR_e2e(3), the claim's ratio
    pool: int = 100_000  # distinct line images per initialisation the tuples are drawn from
    inits: int = 4  # independent initialisations (the replicates of the verdicts)
    dec_weight: float = 1.0  # weight of the per-image hinge in the decomposition loss
    init: Literal["fan_in", "code"] = "fan_in"  # conv init: SPEC's 1/sqrt(fan_in) or the code's
    chunk_size: int = 8192  # tuples per streamed chunk (bounds memory)
    pool_check: bool = True  # init 0: repeat SNR_e2e(1), SNR_e2e(3) on half the pool

    @classmethod
    def smoke(cls) -> Config:
        return cls(ks=(1, 3), tuples=2000, tuples_collapse=4000, pool=400, inits=3,
                   chunk_size=1000)

    @classmethod
    def paper(cls) -> Config:
        return cls(ks=(1, 2, 3, 4, 5, 6), tuples=2_000_000, tuples_collapse=10_000_000,
                   pool=1_000_000, inits=10)

    def validate(self) -> None:
        require(len(self.ks) > 0 and all(1 <= k <= 16 for k in self.ks),
                "ks must be tuple lengths in [1, 16]")
        require(self.tuples >= 8 and self.tuples_collapse >= 8,
                "tuples and tuples_collapse must be ≥ 8")
        require(self.pool >= 2, "pool must be ≥ 2 images")
        require(self.inits >= 1, "inits must be ≥ 1")
        require(self.dec_weight >= 0, "dec_weight must be ≥ 0")
        require(self.chunk_size >= 1, "chunk_size must be ≥ 1")


def pool_features(net: TupleNet, n: int, g: torch.Generator,
                  chunk: int = 500) -> tuple[Tensor, Tensor]:
    """n fresh line images as N1's penultimate features (n, 100) and labels (n,).

    NHWC layout and chunks of 500 images: ~2× faster N1 forwards on CPU than NCHW × 5000.
    """
    p = sample_params(n, g)
    n1 = net.n1.to(memory_format=torch.channels_last)
    hs = []
    with torch.no_grad():
        for a in range(0, n, chunk):
            part = LineParams(*(t[a : a + chunk] for t in (p.theta, p.length, p.cx, p.cy)))
            hs.append(n1.penultimate(draw_lines(part).contiguous(
                memory_format=torch.channels_last)))
    return torch.cat(hs), p.labels


def _deltas(net: TupleNet, h: Tensor, yi: Tensor, weight: float,
            methods: tuple[str, ...]) -> dict[str, Tensor]:
    """∂ℓ_i/∂s_ij (c, k) per method for a chunk of tuples' features h (c, k, 100)."""
    c = h.shape[0]
    with torch.enable_grad():
        s = net.n1.score(h).squeeze(-1).detach().requires_grad_(True)  # (c, k)
        out, yt = net.n2(s), yi.prod(1)
        losses = {"e2e": lambda: end_to_end_loss(out, yt),
                  "dec": lambda: decomposition_loss(out, s, yt, yi, weight)}
        return {m: torch.autograd.grad(losses[m]() * c, s, retain_graph=True)[0]
                for m in methods}  # the batch mean × c = Σ_i ℓ_i: each row is sample i's δ


def _tuples(h: Tensor, y: Tensor, n: int, k: int, size: int, chunk: int,
            g: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """n tuples of k images drawn from the first `size` pool rows, chunk by chunk."""
    for a in range(0, n, chunk):
        idx = torch.randint(0, size, (min(chunk, n - a), k), generator=g, device=h.device)
        yield h[idx], y[idx]


def estimate(net: TupleNet, h: Tensor, y: Tensor, k: int, n: int, cfg: Config,
             g: torch.Generator, size: int | None = None,
             methods: tuple[str, ...] = METHODS) -> dict[str, dict]:
    """SNR of each method's score-layer gradient over n tuples from the pool's first `size`."""
    acc = {m: GradMoments(h.shape[1] + 1) for m in methods}
    for hc, yc in _tuples(h, y, n, k, size or h.shape[0], cfg.chunk_size, g):
        for m, delta in _deltas(net, hc, yc, cfg.dec_weight, methods).items():
            acc[m].add(last_layer_grads(delta, hc))
    out = {}
    for m, a in acc.items():
        r = a.result().to_dict()
        auth = a.authors()
        r["authors"] = {**auth, "noise_rel_diff": (auth["noise"] - r["noise"]) / r["noise"]}
        out[m] = r
    return out


def measure(init: int, cfg: Config, ctx) -> dict:
    """Every k's SNR (both methods) for one initialisation, from one pool of features."""
    nets = {k: make_tuple_net(k, ctx.generator("init", init, device="cpu"), device=ctx.device,
                              init=cfg.init) for k in cfg.ks}
    h, y = pool_features(nets[cfg.ks[0]], cfg.pool, ctx.generator("pool", init))
    res: dict = {"snr": {}, "pool_check": {}}
    for k in cfg.ks:
        row = estimate(nets[k], h, y, k, cfg.tuples, cfg, ctx.generator("tuples", k, init))
        if k in COLLAPSE_KS:  # the claim's ratio: more tuples
            row.update(estimate(nets[k], h, y, k, cfg.tuples_collapse, cfg,
                                ctx.generator("tuples_collapse", k, init), methods=("e2e",)))
        res["snr"][str(k)] = row
        for m in METHODS:
            ctx.log("snr", None, k=k, init=init, method=m,
                    **{f: v for f, v in row[m].items() if f != "authors"})
        if cfg.pool_check and init == 0 and k in COLLAPSE_KS:
            half = estimate(nets[k], h, y, k, cfg.tuples_collapse, cfg,
                            ctx.generator("tuples_half", k, init), size=max(cfg.pool // 2, 1),
                            methods=("e2e",))
            res["pool_check"][str(k)] = {"pool": row["e2e"], "half": half["e2e"]}
    return res


def run(cfg: Config, ctx) -> dict:
    per_init: dict[str, dict[str, list]] = {m: {str(k): [] for k in cfg.ks} for m in METHODS}
    checks: dict[str, list] = {}
    with ctx.progress(cfg.inits, "SNR at init") as advance:
        for i in range(cfg.inits):
            r = ctx.stage(f"init{i}", lambda i=i: measure(i, cfg, ctx))
            for k, row in r["snr"].items():
                for m in METHODS:
                    per_init[m][k].append(row[m])
            for k, c in r["pool_check"].items():
                checks.setdefault(k, []).append(_pool_diff(c["pool"], c["half"]))
            advance(1)
    summary: dict[str, dict[str, dict]] = {m: {} for m in METHODS}
    for m in METHODS:
        for k, rows in per_init[m].items():
            e = t_interval([r["snr"] for r in rows])
            summary[m][k] = {
                "snr": e.value, "interval": e.interval,  # mean over initialisations
                "signal": statistics.fmean(r["signal"] for r in rows),
                "noise": statistics.fmean(r["noise"] for r in rows),
                "below_noise": sum(r["below_noise"] for r in rows),  # of `inits`
                "authors_snr": statistics.fmean(r["authors"]["snr"] for r in rows),
                "authors_noise_rel_diff": statistics.fmean(r["authors"]["noise_rel_diff"]
                                                           for r in rows),
            }
    return {"per_init": per_init, "snr": summary, "pool_check": checks,
            "params": list(SCORE_LAYER), "tuples": cfg.tuples,
            "tuples_collapse": cfg.tuples_collapse, "pool": cfg.pool, "inits": cfg.inits}


def _pool_diff(full: dict, half: dict) -> dict:
    """The e2e SNR on the whole pool and on its first half, and their difference in SEs."""
    se = math.hypot(full["signal_se"] / full["noise"], half["signal_se"] / half["noise"])
    return {"snr_pool": full["snr"], "snr_half_pool": half["snr"],
            "z": (full["snr"] - half["snr"]) / se if se > 0 else math.nan}


def _ratios(res: dict, m: str, k: str) -> list[float]:
    """Per-initialisation SNR_m(k) / SNR_m(1)."""
    rows = res["per_init"][m]
    return [a["snr"] / b["snr"] if b["snr"] else math.nan for a, b in zip(rows[k], rows["1"])]


def claims(res: dict, cfg: Config) -> list[Claim]:
    e = res["snr"]["e2e"]
    pool = f"from a pool of {res['pool']:,} images per initialisation, {res['inits']} inits"
    st = f"the end-to-end gradient's SNR at init collapses by k = 3 " \
         f"({res['tuples_collapse']:,} tuples per estimate {pool})"
    exp = "SNR_e2e(3)/SNR_e2e(1) ≤ 1e-2 (upper end of the t interval over initialisations)"
    paper = "below float32 precision for k ≥ 3; visually zero from k = 2 (Fig. 4)"
    if "1" in e and "3" in e:
        ratios = _ratios(res, "e2e", "3")
        out = [judge("end_to_end_snr_collapses", st, exp, paper, "empirical",
                     Part("SNR_e2e(3)/SNR_e2e(1)", t_interval(ratios), "<=", 1e-2),
                     measured={"ratio_per_init": ratios, "snr_e2e_1": e["1"]["snr"],
                               "snr_e2e_3": e["3"]["snr"],
                               "snr_e2e_3_below_noise": f"{e['3']['below_noise']}/{cfg.inits}",
                               "authors_snr_e2e_3": e["3"]["authors_snr"],
                               "pool_check_z": {k: [c["z"] for c in v]
                                                for k, v in res["pool_check"].items()}})]
    else:
        out = [not_applicable("end_to_end_snr_collapses", st, exp + " — needs 1 and 3 in ks",
                              paper, "empirical")]
    d = res["snr"]["dec"]
    st = f"the decomposition gradient's SNR at init does not fall with k " \
         f"({res['tuples']:,} tuples per estimate {pool})"
    exp = "SNR_dec(k)/SNR_dec(1) ≥ 0.5 for every k (lower end of the t interval)"
    paper = "about constant in k (Fig. 4, blue)"
    others = [k for k in sorted(d, key=int) if k != "1"]
    if "1" in d and others:
        parts = [Part(f"k={k}", t_interval(_ratios(res, "dec", k)), ">=", 0.5) for k in others]
        out.append(judge("decomposition_snr_stable", st, exp, paper, "empirical", parts,
                         measured={k: v["snr"] for k, v in d.items()}))
    else:
        out.append(not_applicable("decomposition_snr_stable", st,
                                  exp + " — needs 1 and another k in ks", paper, "empirical"))
    return out


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    fig, axes = plots.figure(1, 1, width=6.4, height=4.2)
    ax = axes[0, 0]
    colors = {"e2e": "tab:red", "dec": "tab:blue"}
    shift = {"e2e": -0.08, "dec": 0.08}  # side by side: at k = 1 the two SNRs coincide
    for m in METHODS:
        ks = sorted(res["snr"][m], key=int)
        resolved_k, resolved_v, bound_k, bound_v = [], [], [], []
        for k in ks:
            for r in res["per_init"][m][k]:
                x = int(k) + shift[m]
                if r["below_noise"] or r["snr"] <= 0:
                    bound_k.append(x)
                    bound_v.append(math.log(max((r["signal"] + 2 * r["signal_se"]) / r["noise"],
                                                1e-300)))
                else:
                    resolved_k.append(x)
                    resolved_v.append(math.log(r["snr"]))
        means = [(int(k) + shift[m], math.log(res["snr"][m][k]["snr"])) for k in ks
                 if res["snr"][m][k]["snr"] > 0 and res["snr"][m][k]["below_noise"] == 0]
        if means:
            ax.plot(*zip(*means), "s-", color=colors[m], lw=1.5, ms=6,
                    label=f"{LABELS[m]}: mean over inits (all resolved)")
        ax.scatter(resolved_k, resolved_v, color=colors[m], s=14, alpha=0.6,
                   label=f"{LABELS[m]}: one init")
        if bound_k:
            ax.scatter(bound_k, bound_v, color=colors[m], marker="v", s=30,
                       label=f"{LABELS[m]}: signal not resolved from 0 → upper bound (+2 SE)")
    ax.set_xlabel("tuple length k")
    ax.set_ylabel("ln SNR  (‖E ĝ‖² / E‖ĝ − E ĝ‖²)")
    ax.set_title(f"Gradient SNR of N1's last layer at init ({res['inits']} inits)\n"
                 f"{res['tuples']:,} tuples per estimate ({res['tuples_collapse']:,} for "
                 f"end-to-end k = 1, 3), from a pool of {res['pool']:,} images", fontsize=9)
    ax.set_xticks(sorted({int(k) for k in res["snr"]["e2e"]}))
    ax.legend(loc="lower left", fontsize=7)
    return [plots.save(fig, out_dir / "snr.png")]


EXPERIMENT = Experiment(
    name="snr", spec="A5",
    title="gradient signal-to-noise ratio at init vs tuple length k",
    source="Shalev-Shwartz et al. 2017, §3.2, Fig. 4",
    config=Config, run=run, claims=claims, plot=plot,
)
