"""A3 `linear_periodic` — gradient variance for linear-periodic targets (Theorem 2).

Shalev-Shwartz, Shamir & Shammah 2017, §2.2, Theorem 2 (from Shamir 2016): for
H = {x ↦ ψ(v*ᵀx) : ‖v*‖ = r}, ψ periodic, x from a smooth density (here N(0, I_d)) and the square
loss, Var(H, F, w) ≤ O(exp(−Ω(d)) + exp(−Ω(r))): the gradient carries exponentially little
information about v* as r or d grow.

Monte Carlo (SPEC A3): T targets v* = r·g/‖g‖ sharing one x-sample of size n; the A1 net
Linear(d, 10d) → ReLU → Linear(10d, 1) at its random init; Var = the unbiased variance over the T
targets of the full-batch gradient (gradprobe.probes.target_variance). A finite x-sample cannot
resolve a variance below the floor (1/n)·mean_i[var_t h_t(x_i)·‖∇p(x_i)‖²] ≈ G²/(2n), which is
computed and shown beside every point. Within each seed the r sweep shares the x-sample, the net
and the unit directions (common random numbers), so the curve against r is smooth.

What one sees: Var is not monotone in r (as r → 0 every target is the same constant function, so
Var → 0); it peaks near r ≈ 1.5 and then falls by two orders of magnitude onto the floor by
r ≈ 4–5 (d = 10). Against d (r = 3) the decay reachable above the floor is polynomial (~1/d);
the exp(−Ω(d)) regime lies below the Monte-Carlo floor.

Ours (quick, seed 0: 3 seeds, T = 128, ~75 CPU-s): r sweep (d = 10, n = 1e5) peaks at r = 1.5
(Var = 3.6e-2, 195× the floor) and falls 160× to 2.25e-4 = 1.01× the floor at r = 6 (ln-slope
−2.1 per unit r above the floor); d sweep (r = 3, n = 3e5): Var(2)/Var(20) = 18.0, and
Var/floor = 990, 124, 20, 4.7 at d = 2, 5, 10, 20.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gradprobe import plots
from gradprobe.claims import finite
from gradprobe.claims import legacy_claim as Claim
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.probes.target_variance import target_variance
from gradprobe.tasks.parity import parity_net
from gradprobe.tasks.periodic import periodic_targets, sample_directions, sample_gaussian_inputs
from gradprobe.theory.parity import fit_slope

R_START = 1.5  # the r sweep's claim starts at the peak (SPEC A3)
MIN_N_D = 300_000  # the d-sweep claim asks for n ≥ 3e5


@dataclass(frozen=True)
class Config(ExperimentConfig):
    radii: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)  # ‖v*‖ = r (r sweep)
    dims: tuple[int, ...] = (2, 5, 10, 20)  # input dimensions d (d sweep)
    d_for_radii: int = 10  # d of the r sweep (SPEC: 10)
    r_for_dims: float = 3.0  # r of the d sweep (SPEC: 3)
    samples_r: int = 100_000  # x-sample size n in the r sweep (SPEC: 1e5)
    samples_d: int = 300_000  # x-sample size n in the d sweep (SPEC: ≥ 3e5)
    targets: int = 128  # targets T per point (SPEC reference: 128)
    seeds: int = 3  # independent (x-sample, net, targets) draws per point
    psi: Literal["cos", "sin", "triangle"] = "cos"  # the periodic function ψ (SPEC: cos)
    chunk: int = 1024  # inputs per Jacobian block (memory ≈ chunk·(P + T) floats)

    @classmethod
    def smoke(cls) -> Config:
        return cls(radii=(1.5, 3.0, 6.0), dims=(2, 20), samples_r=2000, samples_d=2000,
                   targets=16, seeds=1, chunk=1024)

    @classmethod
    def paper(cls) -> Config:
        return cls(radii=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0),
                   dims=(2, 3, 5, 7, 10, 14, 20, 30), samples_r=300_000, samples_d=1_000_000,
                   targets=256, seeds=5)

    def validate(self) -> None:
        require(len(self.radii) >= 2 and all(0 < r <= 100 for r in self.radii),
                "radii must hold ≥ 2 norms r in (0, 100]")
        require(len(self.dims) >= 2 and all(1 <= d <= 200 for d in self.dims),
                "dims must hold ≥ 2 input dimensions in [1, 200]")
        require(1 <= self.d_for_radii <= 200, "d_for_radii must be in [1, 200]")
        require(0 < self.r_for_dims <= 100, "r_for_dims must be in (0, 100]")
        require(self.samples_r >= 2 and self.samples_d >= 2, "samples_r, samples_d must be ≥ 2")
        require(self.targets >= 2, "targets must be ≥ 2 (an unbiased variance needs two)")
        require(self.seeds >= 1, "seeds must be ≥ 1")
        require(self.chunk >= 1, "chunk must be ≥ 1")


def measure(d: int, r: float, n: int, sweep: str, seed: int, cfg: Config, ctx) -> dict:
    """Var over T targets of norm r and its finite-sample floor, for one (x-sample, net) draw."""
    dev = ctx.device
    net = parity_net(d, ctx.generator("init", sweep, d, seed, device="cpu")).to(dev)
    x = sample_gaussian_inputs(n, d, ctx.generator("x", sweep, d, seed), dev)
    v = sample_directions(cfg.targets, d, r, ctx.generator("dirs", sweep, d, seed), dev)
    tv = target_variance(net, x, periodic_targets(v, cfg.psi), "square", exact=False,
                         chunk=cfg.chunk)
    out = {"var": tv.var, "floor": tv.floor, "g2": tv.g2, "above_floor": tv.var / tv.floor}
    ctx.log("linear_periodic", None, sweep=sweep, d=d, r=r, n=n, seed=seed, **out)
    return out


def _summarise(rows: list[dict]) -> dict:
    var = sum(r["var"] for r in rows) / len(rows)
    floor = sum(r["floor"] for r in rows) / len(rows)
    return {"var": var, "floor": floor, "above_floor": var / floor if floor > 0 else math.nan,
            "g2": sum(r["g2"] for r in rows) / len(rows), "per_seed": rows}


def run(cfg: Config, ctx) -> dict:
    by_r: dict[str, dict] = {}
    by_d: dict[str, dict] = {}
    total = (len(cfg.radii) + len(cfg.dims)) * cfg.seeds
    with ctx.progress(total, "Var over linear-periodic targets") as advance:
        for r in cfg.radii:
            rows = []
            for s in range(cfg.seeds):
                rows.append(ctx.stage(f"r{r}_seed{s}", lambda r=r, s=s: measure(
                    cfg.d_for_radii, r, cfg.samples_r, "r", s, cfg, ctx)))
                advance(1)
            by_r[_key(r)] = _summarise(rows)
        for d in cfg.dims:
            rows = []
            for s in range(cfg.seeds):
                rows.append(ctx.stage(f"d{d}_seed{s}", lambda d=d, s=s: measure(
                    d, cfg.r_for_dims, cfg.samples_d, "d", s, cfg, ctx)))
                advance(1)
            by_d[str(d)] = _summarise(rows)
    return {"r_sweep": by_r, "d_sweep": by_d, "d_for_radii": cfg.d_for_radii,
            "r_for_dims": cfg.r_for_dims, "samples_r": cfg.samples_r,
            "samples_d": cfg.samples_d, "targets": cfg.targets, "seeds": cfg.seeds,
            "psi": cfg.psi}


def _key(r: float) -> str:
    return f"{float(r):g}"


def claims(res: dict, cfg: Config) -> list[Claim]:
    out = []
    rs = res["r_sweep"]
    pts = sorted((float(k), v) for k, v in rs.items() if float(k) >= R_START)
    if len(pts) >= 2:
        (r0, p0), (r1, p1) = pts[0], pts[-1]
        ratio = p0["var"] / p1["var"] if p1["var"] > 0 else math.nan
        above = [(r, p) for r, p in pts if p["var"] >= 2 * p["floor"]]
        slope = fit_slope([r for r, _ in above], [math.log(p["var"]) for _, p in above])
        meas = {**{_key(r): p["var"] for r, p in pts},
                f"ratio_{_key(r0)}_to_{_key(r1)}": ratio,
                f"var_over_floor_at_{_key(r1)}": p1["above_floor"],
                "slope_ln_var_above_floor": slope}
        ok = (finite(ratio, p1["above_floor"], slope) and ratio >= 10
              and p1["var"] <= 2 * p1["floor"] and slope < 0)
    else:
        meas, ok = {"missing": f"radii need ≥ 2 values ≥ {R_START}"}, False
    out.append(Claim(
        "decays_with_r",
        f"Var falls with r from its peak to the Monte-Carlo floor (d = {res['d_for_radii']}, "
        f"n = {res['samples_r']}, mean over {res['seeds']} seeds)",
        f"Var(r={R_START})/Var(r_max) ≥ 10, Var(r_max) ≤ 2× floor, slope of ln Var over the "
        "points ≥ 2× above the floor < 0",
        meas, ok, "Var ≤ O(exp(−Ω(d)) + exp(−Ω(r))) (Thm 2); ref.: ~150× fall to the floor"))
    ds = res["d_sweep"]
    if "2" in ds and "20" in ds:
        ratio = ds["2"]["var"] / ds["20"]["var"] if ds["20"]["var"] > 0 else math.nan
        meas = {**{k: v["above_floor"] for k, v in sorted(ds.items(), key=lambda kv: int(kv[0]))},
                "ratio_2_to_20": ratio}
        ok = (finite(ratio, *[v["above_floor"] for v in ds.values()]) and ratio >= 10
              and all(v["above_floor"] >= 3 for v in ds.values())
              and res["samples_d"] >= MIN_N_D)
    else:
        meas, ok = {"missing": "dims must include 2 and 20"}, False
    out.append(Claim(
        "decays_with_d",
        f"at r = {res['r_for_dims']:g} Var falls with d, every point resolved above the floor "
        f"(n = {res['samples_d']}; measured: Var/floor per d and Var(2)/Var(20))",
        f"Var(d=2)/Var(d=20) ≥ 10, Var ≥ 3× floor at every d, n ≥ {MIN_N_D:,}",
        meas, ok, "Thm 2; ref.: 18–21×, every point ≥ 4.4× the floor"))
    return out


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    fig, axes = plots.figure(1, 2, width=5.2, height=3.9)
    panels = (
        (axes[0, 0], res["r_sweep"], float, "norm r = ‖v*‖",
         f"Var vs r (d = {res['d_for_radii']}, n = {res['samples_r']:.0e})"),
        (axes[0, 1], res["d_sweep"], int, "input dimension d",
         f"Var vs d (r = {res['r_for_dims']:g}, n = {res['samples_d']:.0e})"),
    )
    for ax, sweep, conv, xlabel, title in panels:
        xs = sorted(sweep, key=conv)
        xv = [conv(k) for k in xs]
        for k in xs:
            for row in sweep[k]["per_seed"]:
                ax.plot(conv(k), row["var"], "o", color="tab:blue", ms=3, alpha=0.4)
        ax.plot(xv, [sweep[k]["var"] for k in xs], "-o", color="tab:blue", ms=4,
                label=f"Var over {res['targets']} targets (mean of {res['seeds']} seeds)")
        ax.plot(xv, [sweep[k]["floor"] for k in xs], "--", color="tab:gray",
                label="Monte-Carlo floor (1/n)·E[var_t h·‖∇p‖²]")
        for k in xs:
            ax.annotate(f"{sweep[k]['above_floor']:.3g}×", (conv(k), sweep[k]["var"]),
                        textcoords="offset points", xytext=(3, 4), fontsize=6)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Var(H, F, w)  (log scale)")
        ax.set_title(title)
    ax = axes[0, 1]
    ds = sorted(res["d_sweep"], key=int)
    ax.set_xscale("log")
    ax.set_xticks([int(d) for d in ds], [str(d) for d in ds])
    ax.minorticks_off()
    ax.set_xlabel("input dimension d (log scale)")
    if ds:
        d0, v0 = int(ds[0]), res["d_sweep"][ds[0]]["var"]
        ax.plot([int(d) for d in ds], [v0 * d0 / int(d) for d in ds], ":", color="tab:green",
                label="∝ 1/d (guide)")
    axes[0, 0].axvline(R_START, color="tab:red", lw=0.7, ls=":",
                       label=f"claim starts r = {R_START}")
    for a in axes[0]:
        a.legend(fontsize=6.5, loc="lower left")
    fig.suptitle(f"Linear-periodic targets ψ(v*ᵀx), ψ = {res['psi']}, x ~ N(0, I)  "
                 "(labels: Var / floor)", fontsize=9)
    return [plots.save(fig, out_dir / "linear_periodic.png")]


EXPERIMENT = Experiment(
    name="linear_periodic", spec="A3",
    title="gradient variance over linear-periodic targets falls with r and d (Theorem 2)",
    source="Shalev-Shwartz et al. 2017, §2.2, Theorem 2 (Shamir 2016)",
    config=Config, run=run, claims=claims, plot=plot,
)
