"""C3 `activations` — activation and co-activation statistics of rectifier nets (SPEC C3).

Balduzzi et al. 2017, §3 "Observations on batch normalization", Figs. 3–4. Over the 1-D input
grid (256 points in [−2, 2]), per ReLU layer: the fraction of inputs on which a unit is active
(mean over units), the fraction of distinct input pairs on which it is active for both, per-unit
activation histograms and the contiguity of activation along the grid (runs of equal activation
along each raster row). Paper: activation ≈ ½ with or without BN; co-activation ≈ ¼ with BN and
climbing with depth without it, where deep units become always-on or always-off (bimodal);
resnets keep long runs. The co-activation of a unit is fixed by its activation fraction p:
p(Np − 1)/(N − 1), so bimodal units push it toward the mean of p.

Nets (nets/scalar_nets.py, as in `shattered_1d`) at width 100 — feed-forward He nets with BN
(frozen grid statistics) from layer 2 on, the same without any normalisation, and resnets with
BN (β = 1, 0.1).
The first layer (scalar input, not normalised) sits near 0.35 co-activation and is excluded from
the BN claims, as in SPEC C3.

Verdicts on intervals over the 10 nets (quick, seed 0; ~7 CPU-s): with BN the worst layer's
|mean activation − ½| is 0.006 [0.002, 0.011] (FF), 0.005 [0.001, 0.012] and 0.005 (resnets),
and |co-activation − ¼| 0.011 (FF), 0.015 [0.010, 0.022] (resnet β = 1), 0.004 (β = 0.1), with
intervals from the per-layer t intervals (`worst_deviation`): both hold; without BN
co-activation at layer 50 is 0.494 [0.473, 0.515] and 0.959 [0.947, 0.971] of
its units are bimodal (t intervals): both hold. Mean run length at layer 50: FF+BN 2.1, resnet
β = 1 32, β = 0.1 101 (reference 2.1, 35, 112). Shallower than 50 layers (smoke scale) or fewer
than 3 nets, the claims that need them are `not_applicable`.

Free choice (SPEC D1): the resnet's first-layer scale (`first_layer`: unit N(0, 1) or lecun
N(0, 1/N)); every claim holds for both values (worst BN deviation 0.018 [0.011, 0.026] with
lecun), while the β = 0.1 resnet's mean run at layer 50 drops from 101 to 33.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from gradprobe import plots
from gradprobe.claims import Claim, Estimate, Part, judge, not_applicable, t_interval
from gradprobe.config import ExperimentConfig, FreeChoice, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.mlp import MLP
from gradprobe.nets.scalar_nets import (
    FIRST_LAYER_CHOICE,
    FirstLayer,
    first_layer_std,
    scalar_resnet,
)
from gradprobe.probes.activity import activity
from gradprobe.probes.shattering import grid

MIN_NETS = 3  # replicates behind an interval (COMMON: ≥ 3 nets)


@dataclass(frozen=True)
class Config(ExperimentConfig):
    FREE_CHOICES: ClassVar[dict[str, FreeChoice]] = {
        "first_layer": FIRST_LAYER_CHOICE,
    }

    depths: tuple[int, ...] = (2, 10, 50)  # layers shown as rasters; nets have max(depths) layers
    width: int = 100  # units per layer, paper Figs. 3–4
    nets: int = 10  # random nets averaged (single nets vary a lot without BN), SPEC C3
    grid: int = 256  # inputs: equally spaced points in [lo, hi]
    lo: float = -2.0  # grid start
    hi: float = 2.0  # grid end
    betas: tuple[float, ...] = (1.0, 0.1)  # resnet branch scales
    bimodal_lo: float = 0.05  # a unit active on < 5% ...
    bimodal_hi: float = 0.95  # ... or > 95% of the inputs is bimodal (SPEC C3)
    first_layer: FirstLayer = "unit"  # resnet first layer v, b ~ N(0, 1) or N(0, 1/N) (free)

    @classmethod
    def smoke(cls) -> Config:
        return cls(depths=(2, 6), width=24, nets=MIN_NETS, grid=48)

    @classmethod
    def paper(cls) -> Config:
        return cls(nets=100)

    def validate(self) -> None:
        require(len(self.depths) > 0 and all(d >= 2 for d in self.depths),
                "depths must be ≥ 2 (layer 1 is the un-normalised scalar-input layer)")
        require(self.width >= 2, "width must be ≥ 2")
        require(self.nets >= 1, "nets must be ≥ 1")
        require(self.grid >= 4, "grid must be ≥ 4")
        require(self.hi > self.lo, "hi must be > lo")
        require(all(b > 0 for b in self.betas), "betas must be > 0")
        require(0 <= self.bimodal_lo < self.bimodal_hi <= 1, "need 0 ≤ bimodal_lo < bimodal_hi ≤ 1")


def variants(cfg: Config) -> list[tuple[str, str]]:
    return [("ff_bn", "feed-forward + BN"), ("ff", "feed-forward, no BN")] + [
        (f"resnet_bn_beta{b:g}", f"resnet + BN, β={b:g}") for b in cfg.betas]


def build(name: str, depth: int, cfg: Config, g: torch.Generator) -> torch.nn.Module:
    if name.startswith("ff"):
        m = MLP([1] + [cfg.width] * depth + [1], "relu", norm="bn" if name == "ff_bn" else "none",
                norm_from=2, init="he", bias_std=1.0, generator=g)
        return m
    beta = float(name.removeprefix("resnet_bn_beta"))
    return scalar_resnet(depth, beta, cfg.width, g,
                         embed_std=first_layer_std(cfg.first_layer, cfg.width))


def _bits(pattern: torch.Tensor) -> list[str]:
    """(inputs, units) bool raster → one '0'/'1' string per unit (a raster row)."""
    rows = pattern.T.to(torch.uint8).numpy()
    return ["".join("1" if v else "0" for v in row) for row in rows]


def measure(name: str, cfg: Config, ctx) -> dict:
    depth = max(cfg.depths)
    x = grid(cfg.lo, cfg.hi, cfg.grid, device=ctx.device)
    acts, coacts, runs, bimodal, hists = [], [], [], [], {}
    rasters: dict[str, list[str]] = {}
    runs_at: dict[str, list[int]] = {}
    first = 1
    for k in range(cfg.nets):
        model = build(name, depth, cfg, ctx.generator("net", name, k, device="cpu")).to(ctx.device)
        st = activity(model, x, keep_patterns=(k == 0))
        # layer number of each hooked ReLU: the resnet's first layer vx + b has none
        first = 1 if name.startswith("ff") else 2
        index = {first + i: i for i in range(len(st.names))}
        acts.append(st.activation.tolist())
        coacts.append(st.coactivation.tolist())
        runs.append(st.mean_run_length.tolist())
        last = st.unit_activation[-1]
        bimodal.append(float(((last < cfg.bimodal_lo) | (last > cfg.bimodal_hi)).float().mean()))
        for d in cfg.depths:
            if d in index:
                hists.setdefault(str(d), []).extend(st.unit_activation[index[d]].tolist())
        if k == 0 and st.patterns is not None:
            for d in cfg.depths:
                if d in index:
                    rasters[str(d)] = _bits(st.patterns[index[d]])
                    runs_at[str(d)] = st.run_length_counts[index[d]].tolist()
    a, c, r = (np.array(v) for v in (acts, coacts, runs))
    return {
        "activation": a.mean(0).tolist(), "coactivation": c.mean(0).tolist(),
        "mean_run_length": r.mean(0).tolist(),
        "activation_per_net": a.tolist(), "coactivation_per_net": c.tolist(),
        "bimodal_fraction_last": float(np.mean(bimodal)), "bimodal_per_net": bimodal,
        "unit_activation": hists, "raster": rasters, "run_length_counts": runs_at,
        "layer_ids": list(range(first, first + int(a.shape[1]))),
    }


def run(cfg: Config, ctx) -> dict:
    out = {}
    vs = variants(cfg)
    with ctx.progress(len(vs), "activations nets") as advance:
        for name, _ in vs:
            out[name] = ctx.stage(name, lambda n=name: measure(n, cfg, ctx))
            ctx.log("coactivation_last", None, net=name, value=out[name]["coactivation"][-1])
            advance(1)
    return {"variants": out, "depth": max(cfg.depths)}


def _normalised(res: dict, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(nets, layers) activation and co-activation on the normalised layers (layer ≥ 2: layer 1
    of the FF nets is the scalar-input layer; every resnet ReLU follows a BN); None if absent."""
    v = res["variants"].get(name)
    if v is None:
        return None
    keep = [i for i, layer in enumerate(v["layer_ids"]) if layer >= 2]
    if not keep:
        return None
    a, c = np.asarray(v["activation_per_net"]), np.asarray(v["coactivation_per_net"])
    return a[:, keep], c[:, keep]


def worst_deviation(x: np.ndarray, target: float) -> Estimate:
    """max over layers of |mean over nets − target| for x (nets, layers), with the interval
    made of the per-layer Student t intervals: its upper end is the largest |deviation| any
    layer's interval reaches, its lower end the largest that some layer's interval excludes.
    So it lies inside a tolerance exactly when every layer's interval does, and outside when some
    layer's interval does (SPEC C3: "on every normalised layer")."""
    lo, hi, value, n = 0.0, 0.0, 0.0, x.shape[0]
    for i in range(x.shape[1]):
        e = t_interval(x[:, i])
        a, b = e.lo - target, e.hi - target
        lo = max(lo, a if a > 0 else -b if b < 0 else 0.0)
        hi = max(hi, max(abs(a), abs(b)))
        value = max(value, abs(e.value - target))
    return Estimate(value, lo, hi, f"max over layers of student t intervals over {n} nets", n)


def claims(res: dict, cfg: Config) -> list[Claim]:
    """Intervals over nets (≥ 3): the BN claims judge the worst layer's deviation of the mean
    over nets (`worst_deviation`); the no-BN claims a t interval of the per-net value at 50."""
    bn = ["ff_bn"] + [f"resnet_bn_beta{b:g}" for b in cfg.betas]
    enough = cfg.nets >= MIN_NETS
    out = []
    for cid, idx, target, what, ref in (
        ("bn_half_active", 0, 0.5, "active on half the inputs", "reference max dev ≤ 0.013"),
        ("bn_quarter_coactive", 1, 0.25, "co-active on a quarter of input pairs",
         "reference max dev ≤ 0.015"),
    ):
        meta = dict(id=cid, statement=f"with BN units are {what}, every normalised layer",
                    paper=f"≈ {target:g} with BN (Fig. 3); {ref}", kind="empirical")
        parts = []
        for name in bn:
            stats = _normalised(res, name)
            if stats is not None and enough:
                e = worst_deviation(stats[idx], target)
                parts.append(Part(name, e, "<=", 0.05))
        out.append(judge(expected=f"max over normalised layers |mean − {target:g}| ≤ 0.05 per "
                         "BN net family", parts=parts, **meta) if parts else
                   not_applicable(expected=f"needs a BN variant with layers ≥ 2 and ≥ {MIN_NETS}"
                                  " nets", **meta))
    ff = res["variants"].get("ff")
    depth = res["depth"]
    ok = ff is not None and enough and depth >= 50
    need = f"needs depth ≥ 50 among depths and ≥ {MIN_NETS} nets"
    meta = dict(id="no_bn_coactivation_climbs",
                statement="without BN co-activation climbs with depth",
                paper="climbs with depth (Fig. 3); reference 0.46–0.49 at 50", kind="empirical")
    out.append(judge(expected=f"mean co-activation at layer {depth} ≥ 0.35",
                     parts=Part(f"layer {depth}", t_interval(
                         [row[-1] for row in ff["coactivation_per_net"]]), ">=", 0.35), **meta)
               if ok else not_applicable(expected=need, **meta))
    meta = dict(id="no_bn_bimodal", statement="without BN deep units are always on or always off",
                paper="bimodal histogram (Fig. 4a); reference 0.87–0.92", kind="empirical")
    out.append(judge(expected=f"mean fraction of layer-{depth} units active on < 5% or > 95% of "
                     "inputs ≥ ½", parts=Part(f"layer {depth}", t_interval(ff["bimodal_per_net"]),
                                              ">=", 0.5), **meta)
               if ok else not_applicable(expected=need, **meta))
    return out


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    names = variants(cfg)
    paths = []
    fig, axes = plots.figure(1, 2, width=5.0, height=3.6)
    for i, (name, label) in enumerate(names):
        v = res["variants"].get(name)
        if v is None:
            continue
        layers = np.asarray(v["layer_ids"])
        c = plots.COLORS[i % len(plots.COLORS)]
        ls = "-" if name == "ff" else ":" if name == "ff_bn" else "--"
        axes[0, 0].plot(layers, v["activation"], ls, color=c, label=label)
        axes[0, 1].plot(layers, v["coactivation"], ls, color=c, label=label)
    for ax, y, title in ((axes[0, 0], 0.5, "activation"), (axes[0, 1], 0.25, "co-activation")):
        ax.axhline(y, color="k", lw=0.8, alpha=0.6, label=f"theory {y:g} (typical inputs)")
        ax.set_xlabel("layer")
        ax.set_ylabel(f"{title} fraction (mean of {cfg.nets} nets)")
        ax.set_ylim(0, 1)
        ax.set_title("activation: proportion of inputs" if y == 0.5
                     else "co-activation: proportion of distinct input pairs")
        ax.legend(fontsize=7)
    fig.suptitle("Activations and co-activations on the 1-D grid (Balduzzi et al. Fig. 3); "
                 "no BN solid, BN dotted, resnets dashed")
    paths.append(plots.save(fig, out_dir / "fig3_activation.png"))

    # Fig. 4: rasters at the deepest layer with per-unit activation and run-length histograms
    d = str(max(cfg.depths))
    fig, axes = plots.figure(3, len(names), width=3.2, height=2.5)
    for j, (name, label) in enumerate(names):
        v = res["variants"].get(name)
        if v is None or d not in v["raster"]:
            continue
        raster = np.array([[ch == "1" for ch in row] for row in v["raster"][d]], dtype=float)
        ax = axes[0, j]
        ax.imshow(raster, aspect="auto", cmap="gray_r", interpolation="nearest",
                  extent=(cfg.lo, cfg.hi, raster.shape[0], 0))
        ax.grid(False)
        ax.set_title(f"{label}, layer {d}", fontsize=8)
        ax.set_xlabel("input x")
        ax.set_ylabel("unit")
        ax = axes[1, j]
        ax.hist(v["unit_activation"][d], bins=20, range=(0, 1), color="tab:blue")
        ax.set_xlabel("fraction of inputs a unit is active on")
        ax.set_ylabel(f"units ({cfg.nets} nets)")
        ax.set_title(f"bimodal (<5% or >95%): "
                     f"{_bimodal(v['unit_activation'][d], cfg):.2f}", fontsize=8)
        ax = axes[2, j]
        counts = np.array(v["run_length_counts"][d], dtype=float)
        lengths = np.arange(len(counts))
        bins = np.logspace(0, np.log10(max(len(counts), 2)), 16)
        ax.hist(lengths, bins=bins, weights=counts * lengths, color="tab:green")
        ax.set_xscale("log")
        ax.set_xlabel("run length (grid points, log)")
        ax.set_ylabel("points in runs of that length (net 1)")
        mean_run = v["mean_run_length"][v["layer_ids"].index(int(d))]
        ax.set_title(f"contiguity: mean run {mean_run:.1f} (mean of {cfg.nets} nets)", fontsize=8)
    fig.suptitle(f"Activation rasters, unit-activation and contiguity histograms at layer {d} "
                 "(Balduzzi et al. Fig. 4); reference mean runs FF+BN 2.1, resnet β=1 35, "
                 "β=0.1 112")
    paths.append(plots.save(fig, out_dir / "fig4_rasters.png"))
    return paths


def _bimodal(fracs: list[float], cfg: Config) -> float:
    a = np.asarray(fracs)
    return float(((a < cfg.bimodal_lo) | (a > cfg.bimodal_hi)).mean()) if a.size else float("nan")


EXPERIMENT = Experiment(
    name="activations",
    spec="C3",
    title="activation ½ and co-activation ¼ with BN; bimodal units without it",
    source="Balduzzi et al. 2017, The Shattered Gradients Problem, §3, Figs. 3–4",
    config=Config,
    run=run,
    claims=claims,
    plot=plot,
)
