"""C3 `activations` — activation and co-activation statistics of rectifier nets (SPEC C3).

Balduzzi et al. 2017, §3 "Observations on batch normalization", Figs. 3–4. Over the 1-D input
grid (256 points in [−2, 2]), per ReLU layer: the fraction of inputs on which a unit is active
(mean over units), the fraction of distinct input pairs on which it is active for both, per-unit
activation histograms and the contiguity of activation along the grid (runs of equal activation
along each raster row). Paper: activation ≈ ½ with or without BN; co-activation ≈ ¼ with BN and
climbing with depth without it, where deep units become always-on or always-off (bimodal);
resnets keep long runs. The co-activation of a unit is fixed by its activation fraction p:
p(Np − 1)/(N − 1), so bimodal units push it toward the mean of p.

Nets: the 1-D nets of `shattered_1d` at width 100 — feed-forward He nets with BN (frozen grid
statistics) from layer 2 on, the same without any normalisation, and resnets with BN (β = 1, 0.1).
The first layer (scalar input, not normalised) sits near 0.35 co-activation and is excluded from
the BN claims, as in SPEC C3.

Quick (10 nets, depth 50, ~5 CPU-s): with BN max |act − ½| ≤ 0.006 and max |coact − ¼| ≤ 0.015
from layer 2 on; without BN co-activation at layer 50 is 0.49 and 0.96 of its units are bimodal;
mean run length at layer 50: FF+BN 2.1, resnet β = 1 32, β = 0.1 101 (reference 2.1, 35, 112).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gradprobe import plots
from gradprobe.claims import finite
from gradprobe.claims import legacy_claim as Claim
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.experiments.shattered_1d import Config as C1Config
from gradprobe.experiments.shattered_1d import build_resnet
from gradprobe.nets.mlp import MLP
from gradprobe.probes.activity import activity
from gradprobe.probes.shattering import grid


@dataclass(frozen=True)
class Config(ExperimentConfig):
    depths: tuple[int, ...] = (2, 10, 50)  # layers shown as rasters; nets have max(depths) layers
    width: int = 100  # units per layer, paper Figs. 3–4
    nets: int = 10  # random nets averaged (single nets vary a lot without BN), SPEC C3
    grid: int = 256  # inputs: equally spaced points in [lo, hi]
    lo: float = -2.0  # grid start
    hi: float = 2.0  # grid end
    betas: tuple[float, ...] = (1.0, 0.1)  # resnet branch scales
    bimodal_lo: float = 0.05  # a unit active on < 5% ...
    bimodal_hi: float = 0.95  # ... or > 95% of the inputs is bimodal (SPEC C3)

    @classmethod
    def smoke(cls) -> Config:
        return cls(depths=(2, 6), width=24, nets=2, grid=48)

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
    c1 = C1Config(width=cfg.width, depths=(depth,))
    return build_resnet(depth, beta, c1, g)


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


def _normalised(res: dict, name: str) -> tuple[list[float], list[float]]:
    v = res["variants"].get(name)
    if v is None:
        return [], []
    # layer 1 (FF) is the scalar-input layer, not normalised; every resnet ReLU follows a BN
    keep = [i for i, layer in enumerate(v["layer_ids"]) if layer >= 2]
    return [v["activation"][i] for i in keep], [v["coactivation"][i] for i in keep]


def claims(res: dict, cfg: Config) -> list[Claim]:
    nan = float("nan")
    acts, coacts = {}, {}
    for name in ["ff_bn"] + [f"resnet_bn_beta{b:g}" for b in cfg.betas]:
        a, c = _normalised(res, name)
        if a:
            acts[name] = max(abs(x - 0.5) for x in a)
            coacts[name] = max(abs(x - 0.25) for x in c)
    ff = res["variants"].get("ff")
    co_last = ff["coactivation"][-1] if ff else nan
    bim = ff["bimodal_fraction_last"] if ff else nan
    depth = res["depth"]
    return [
        Claim("bn_half_active", "with BN units are active on half the inputs, every layer",
              "max over normalised layers |act − ½| ≤ 0.05", acts,
              bool(acts) and all(finite(v) and v <= 0.05 for v in acts.values()),
              "≈ ½ with or without BN (Fig. 3); reference max dev ≤ 0.013"),
        Claim("bn_quarter_coactive", "with BN units are co-active on a quarter of input pairs",
              "max over normalised layers |coact − ¼| ≤ 0.05", coacts,
              bool(coacts) and all(finite(v) and v <= 0.05 for v in coacts.values()),
              "≈ ¼ with BN (Fig. 3); reference max dev ≤ 0.015"),
        Claim("no_bn_coactivation_climbs", "without BN co-activation climbs with depth",
              f"co-activation at layer {depth} ≥ 0.35 (needs depth 50)", {str(depth): co_last},
              finite(co_last) and co_last >= 0.35 and depth >= 50,
              "climbs with depth (Fig. 3); reference 0.46–0.49 at 50"),
        Claim("no_bn_bimodal", "without BN deep units are always on or always off",
              f"≥ ½ of layer-{depth} units active on < 5% or > 95% of inputs (needs depth 50)",
              {str(depth): bim}, finite(bim) and bim >= 0.5 and depth >= 50,
              "bimodal histogram (Fig. 4a); reference 0.87–0.92"),
    ]


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
