"""A9 `tuple_variance` — the gradient carries exponentially little about u as k grows (Theorem 3).

Shalev-Shwartz, Shamir & Shammah 2017, §3.2, Theorem 3: for k-tuples of i.i.d. standard Gaussian
x_l ∈ R^d, targets h_u(x) = ∏_l sign(⟨u, x_l⟩) with u uniform on the unit sphere, the square loss
and E_x‖∂p_w/∂w‖² ≤ G(w)²,
    Var(H, F, w) ≤ G(w)² · O(√(k·log d / d))^k.

Setup (SPEC D3): the predictor is the A4 composition N2 ∘ N1 on vectors (nets.vector_tuples):
a linear score N1 shared by the k parts, then N2 = sigmoid → FC 100 ReLU → FC 1, at its random
init (trunc-normal fan-in). N2 couples the parts; an additive-in-parts predictor would have
exactly zero variance for k ≥ 2 (tests check the estimator returns 0 for one). We measure
Var = E_u ‖∇F_u − E_u ∇F_u‖² and G² = E_x ‖∂p/∂w‖² with unbiased U-statistics over u and x
(probes.tuple_variance: pairs of distinct draws only, so no Monte-Carlo floor to subtract), the
per-input gradients centred by a mean estimated on independent inputs (this changes no target's
gradient deviation, because E_x h_u = 0, and removes the large common part from the noise).
Each replicate is an independent net with its own u's and x's; intervals are Student t over the
replicates.

Claim `tuple_variance_decays` (empirical): at every d, Var/G² decreases with k (paired
differences over the replicates) and its upper interval end at each k ≥ 2 lies below the
envelope c·(k·ln d / d)^{k/2}, c fitted to the k = 1 point estimate. Each k is compared with the
largest smaller k whose Var/G² is resolved above 0 (the lower end of its interval): past a few k
the variance falls below what the sample resolves, and comparing two unresolved values says
nothing either way. The envelope falls with k
only where k·ln d / d < 1 (d ≥ 64 for k ≤ 5); the smaller d keeps the decay measurable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from gradprobe import plots
from gradprobe.claims import Claim, Part, judge, not_applicable, t_interval
from gradprobe.config import ExperimentConfig, FreeChoice, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.vector_tuples import VectorTupleNet
from gradprobe.probes.tuple_variance import ustat_target_variance
from gradprobe.tasks.gaussian_tuples import product_sign_targets, sample_tuples
from gradprobe.tasks.periodic import sample_directions


@dataclass(frozen=True)
class Config(ExperimentConfig):
    FREE_CHOICES: ClassVar[dict[str, FreeChoice]] = {
        "hidden": FreeChoice((100, 20), "Theorem 3 holds for any predictor; 100 is A4's N2 width"),
    }
    ks: tuple[int, ...] = (1, 2, 3, 4, 5)  # tuple sizes k (SPEC: 1..5)
    dims: tuple[int, ...] = (4, 16, 64)  # part dimensions d (envelope falls with k for d ≥ 64)
    nets: int = 6  # independent replicates: own init, targets u and inputs x
    tuples: int = 16384  # inputs n per replicate (U-statistic over pairs i ≠ j)
    targets: int = 64  # directions u per replicate (pairs t ≠ t')
    center_tuples: int = 4096  # independent inputs for the gradient centre
    hidden: int = 100  # N2's hidden width (A4: 100)
    chunk: int = 8192  # tuples per gradient block

    @classmethod
    def smoke(cls) -> Config:
        return cls(ks=(1, 2, 3), dims=(4, 16), nets=3, tuples=1024, targets=16,
                   center_tuples=512)

    @classmethod
    def paper(cls) -> Config:
        return cls(dims=(4, 16, 64, 256, 784), nets=8, tuples=131072, targets=128)

    def validate(self) -> None:
        require(len(self.ks) >= 2 and all(1 <= k <= 12 for k in self.ks),
                "ks must hold ≥ 2 tuple sizes in [1, 12]")
        require(len(self.dims) >= 1 and all(2 <= d <= 4096 for d in self.dims),
                "dims must hold part dimensions in [2, 4096]")
        require(self.nets >= 1, "nets must be ≥ 1")
        require(self.tuples >= 2 and self.targets >= 2, "tuples and targets must be ≥ 2")
        require(self.center_tuples >= 1, "center_tuples must be ≥ 1")
        require(self.hidden >= 1 and self.chunk >= 1, "hidden and chunk must be ≥ 1")


def envelope(k: int, d: int) -> float:
    """Theorem 3's rate without its constant: (k·ln d / d)^{k/2}."""
    return (k * math.log(d) / d) ** (k / 2)


def measure(k: int, d: int, rep: int, cfg: Config, ctx) -> dict:
    """One unbiased estimate of Var and G² for a fresh net, fresh u's and fresh tuples."""
    dev = ctx.device
    net = VectorTupleNet(d, k, ctx.generator("init", k, d, rep, device="cpu"),
                         hidden=cfg.hidden).double().to(dev)
    g = ctx.generator("data", k, d, rep)
    u = sample_directions(cfg.targets, d, 1.0, g, dev).double()
    center = net.per_sample_grads(
        sample_tuples(cfg.center_tuples, k, d, g, dev).double()).mean(0)
    x = sample_tuples(cfg.tuples, k, d, g, dev).double()
    jac = torch.cat([net.per_sample_grads(x[i:i + cfg.chunk])
                     for i in range(0, cfg.tuples, cfg.chunk)])
    est = ustat_target_variance(jac, product_sign_targets(u, x), center=center)
    out = {"var": est.var, "g2": est.g2, "ratio": est.var / est.g2,
           "second_moment": est.second_moment, "mean_part": est.mean_part}
    ctx.log("tuple_variance", None, k=k, d=d, rep=rep, **out)
    return out


def run(cfg: Config, ctx) -> dict:
    per_d: dict[str, dict] = {}
    with ctx.progress(len(cfg.dims) * len(cfg.ks) * cfg.nets, "Var over ∏ sign targets") as adv:
        for d in cfg.dims:
            per_k: dict[str, dict] = {}
            for k in cfg.ks:
                rows = []
                for r in range(cfg.nets):
                    rows.append(ctx.stage(f"d{d}_k{k}_rep{r}",
                                          lambda k=k, d=d, r=r: measure(k, d, r, cfg, ctx)))
                    adv(1)
                ratio = t_interval([row["ratio"] for row in rows])
                per_k[str(k)] = {"per_net": rows, "ratio": ratio.value,
                                 "ratio_interval": [ratio.lo, ratio.hi],
                                 "var": sum(row["var"] for row in rows) / len(rows),
                                 "g2": sum(row["g2"] for row in rows) / len(rows),
                                 "envelope_rate": envelope(k, d)}
            per_d[str(d)] = per_k
    return {"per_d": per_d, "nets": cfg.nets, "tuples": cfg.tuples, "targets": cfg.targets,
            "hidden": cfg.hidden}


def _c_fit(per_k: dict, d: int) -> float:
    """The envelope's constant from the k = 1 point estimate: ratio(1) / (ln d / d)^{1/2}."""
    return per_k["1"]["ratio"] / envelope(1, d)


def claims(res: dict, cfg: Config) -> list[Claim]:
    statement = ("Theorem 3: Var(H, F, w)/G(w)² over the targets ∏ sign(⟨u, x_l⟩) decreases with "
                 "k, below the envelope c·(k·ln d/d)^{k/2} fitted at k = 1 (unbiased "
                 f"U-statistics; Student t over {res['nets']} nets, each with its own u's and x's)")
    expected = ("at every d, for each k ≥ 2: ratio(k) − ratio(k') < 0 with k' the largest "
                "smaller k whose ratio is resolved above 0, and the upper end of "
                "ratio(k) < c·(k·ln d/d)^{k/2}")
    paper = "Var ≤ G² · O(√(k log d / d))^k (Thm 3)"
    parts, measured = [], {}
    for d_key, per_k in res["per_d"].items():
        d = int(d_key)
        if "1" not in per_k:
            continue
        c = _c_fit(per_k, d)
        ks = sorted(int(k) for k in per_k)
        measured[f"d={d}"] = {"c": c, **{f"k={k}": per_k[str(k)]["ratio"] for k in ks}}
        ref = ks[0]  # the largest smaller k whose ratio is resolved above 0
        for k in ks[1:]:
            a = [row["ratio"] for row in per_k[str(k)]["per_net"]]
            b = [row["ratio"] for row in per_k[str(ref)]["per_net"]]
            parts.append(Part(f"d={d} ratio(k={k}) − ratio(k={ref})",
                              t_interval([x - y for x, y in zip(a, b)]), "<", 0.0))
            est = t_interval(a)
            parts.append(Part(f"d={d} ratio(k={k}) vs envelope", est, "<", c * envelope(k, d)))
            if est.lo > 0:
                ref = k
    if not parts:
        return [not_applicable("tuple_variance_decays", statement,
                               "needs k = 1 and consecutive k ≥ 2 in ks", paper, "empirical")]
    return [judge("tuple_variance_decays", statement, expected, paper, "empirical", parts,
                  measured=measured)]


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    fig, axes = plots.figure(1, 1, width=6.4, height=4.4)
    ax = axes[0, 0]
    for i, (d_key, per_k) in enumerate(sorted(res["per_d"].items(), key=lambda kv: int(kv[0]))):
        col = plots.COLORS[i % len(plots.COLORS)]
        d = int(d_key)
        ks = sorted(int(k) for k in per_k)
        iv = {k: per_k[str(k)]["ratio_interval"] for k in ks}
        res_k = [k for k in ks if iv[k][0] > 0]  # resolved above 0
        ax.plot(res_k, [per_k[str(k)]["ratio"] for k in res_k], "o-", color=col, ms=4,
                label=f"d={d}: Var/G² (mean of {res['nets']} nets, resolved)")
        for k in res_k:
            ax.plot([k, k], iv[k], color=col, lw=3, alpha=0.35)
        unres = [k for k in ks if iv[k][0] <= 0 < iv[k][1]]
        ax.plot(unres, [iv[k][1] for k in unres], "v", color=col, mfc="none", ms=6,
                label=f"d={d}: upper end where the interval holds 0")
        if "1" in per_k:
            c = _c_fit(per_k, d)
            ax.plot(ks, [c * envelope(k, d) for k in ks], "--", color=col, lw=1,
                    label=f"d={d}: envelope c·(k ln d/d)^(k/2), c = {c:.3g}")
    ax.set_yscale("log")
    ax.set_xticks(sorted({int(k) for per_k in res["per_d"].values() for k in per_k}))
    ax.set_xlabel("tuple size k")
    ax.set_ylabel("Var(H, F, w) / G(w)²  (log; bars: 95 % interval)")
    ax.set_title("Gradient variance across targets ∏ sign(⟨u, x_l⟩) (Thm 3)")
    ax.legend(fontsize=6, ncol=1, loc="lower left")
    return [plots.save(fig, out_dir / "tuple_variance.png")]


EXPERIMENT = Experiment(
    name="tuple_variance", spec="A9",
    title="gradient variance across ∏ sign(⟨u, x_l⟩) targets decays with k (Theorem 3)",
    source="Shalev-Shwartz et al. 2017, §3.2, Theorem 3",
    config=Config, run=run, claims=claims, plot=plot,
)
