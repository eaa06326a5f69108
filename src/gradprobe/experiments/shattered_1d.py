"""C1 `shattered_1d` — gradients of a 1-D rectifier net over an input grid (SPEC C1).

Balduzzi et al. 2017, "The Shattered Gradients Problem", §1–2, Figs. 1–2: df/dx of a net
f: R → R over 256 equally spaced inputs in [−2, 2], at initialisation, looks like brown noise for
a 1-layer net (w, v, b ~ N(0, 1/N)), like white noise for a 24-layer mean-centred feed-forward
net (He init), and keeps its structure in a 50-layer resnet x_l = x_{l−1} + β·W ρ(BN(x_{l−1})).
Centring / BN statistics are computed over the grid itself and frozen (FrozenNorm's detached
batch statistics), so one backward of f.sum() gives all 256 derivatives. The first (scalar-input)
layer is not normalised: centring it would put every kink at x = 0.

Verdicts on t intervals over the 20 nets (quick, seed 0; ~14 CPU-s): `shallow_is_brown` holds
(lag-1 ACF 0.970 [0.959, 0.980]; brown noise 0.97, reference 0.98), `deep_feedforward_is_white`
holds (−0.0003 [−0.040, 0.039] at depth 24; 0.76 at depth 10, reference 0.77),
`resnets_keep_structure` holds (depth 50: β = 0.1 0.892 [0.865, 0.918], β = 1 0.692; reference
0.87, 0.65). Without centring (`--set centre=false`) FF depth 24 stays at ~0.90 (the failed
public replication). A run without depth 1, 24 or 50 (smoke scale), without β = 0.1 and 1, or
with fewer than 3 nets makes the claims that need them `not_applicable`.

Free choices (SPEC D1): the paper does not say what the resnet's first (scalar-input) layer is.
We use a linear one, x_1 = v x + b with v, b ~ N(0, 1) (`first_layer=unit`), then 49 blocks
(depth = weight layers before the readout, as for the FF nets). `resnets_keep_structure` depends
on it: with the FF nets' N(0, 1/N) (`first_layer=lecun`) β = 0.1 falls to 0.696 [0.666, 0.726]
(inconclusive), and with x_1 = ρ(v x + b) (`resnet_embed=relu`) to 0.756 / 0.423 (β = 0.1 / 1,
both intervals straddle their thresholds: inconclusive).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch

from gradprobe import plots
from gradprobe.claims import Claim, Part, judge, not_applicable, t_interval
from gradprobe.config import ExperimentConfig, FreeChoice, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.scalar_nets import (
    FIRST_LAYER_CHOICE,
    FirstLayer,
    first_layer_std,
    scalar_feedforward,
    scalar_resnet,
)
from gradprobe.probes.shattering import autocorrelation, covariance_image, grid, input_gradients

MIN_NETS = 3  # replicates behind an interval (COMMON: ≥ 3 nets)


@dataclass(frozen=True)
class Config(ExperimentConfig):
    FREE_CHOICES: ClassVar[dict[str, FreeChoice]] = {
        "first_layer": FIRST_LAYER_CHOICE,
        "resnet_embed": FreeChoice(("linear", "relu"), "the paper does not say whether the "
                                   "resnet's first layer is linear (v x + b) or ρ(v x + b)"),
    }

    depths: tuple[int, ...] = (1, 2, 4, 10, 24, 50)  # ReLU layers per net (paper Fig. 2)
    betas: tuple[float, ...] = (1.0, 0.1)  # resnet branch scales β (paper Fig. 1–2)
    archs: tuple[str, ...] = ("feedforward", "resnet")  # which architectures to measure
    nets: int = 20  # random nets per (architecture, depth), SPEC C1
    width: int = 200  # rectifiers per hidden layer, paper §2
    grid: int = 256  # points of the input grid, paper §2
    lo: float = -2.0  # grid start
    hi: float = 2.0  # grid end
    max_lag: int = 64  # ACF lags kept for the figure
    centre: bool = True  # mean-centre FF layers 2.. over the grid (False: the failed replication)
    resnet_embed: Literal["linear", "relu"] = "linear"  # resnet first layer vx + b or ρ(vx + b)
    first_layer: FirstLayer = "unit"  # resnet first layer v, b ~ N(0, 1) or N(0, 1/N) (free)
    noise_draws: int = 20  # brown / white noise references averaged like the nets

    @classmethod
    def smoke(cls) -> Config:
        return cls(depths=(1, 4), nets=MIN_NETS, width=32, grid=64, max_lag=16, noise_draws=2)

    @classmethod
    def paper(cls) -> Config:
        return cls(nets=100, noise_draws=100)

    def validate(self) -> None:
        require(all(d >= 1 for d in self.depths) and len(self.depths) > 0,
                "depths must be ≥ 1 (ReLU layers)")
        require(all(b > 0 for b in self.betas), "betas must be > 0")
        require(set(self.archs) <= {"feedforward", "resnet"} and len(self.archs) > 0,
                "archs: choose from feedforward, resnet")
        require(self.nets >= 1, "nets must be ≥ 1")
        require(self.width >= 2, "width must be ≥ 2")
        require(self.grid >= 8, "grid must be ≥ 8 points")
        require(self.hi > self.lo, "hi must be > lo")
        require(1 <= self.max_lag < self.grid, "max_lag must be in [1, grid − 1]")
        require(self.noise_draws >= 1, "noise_draws must be ≥ 1")


def variants(cfg: Config) -> list[tuple[str, str, float | None, int]]:
    """(key, arch, beta, depth) for every net family measured."""
    out = []
    if "feedforward" in cfg.archs:
        out += [(f"feedforward/{d}", "feedforward", None, d) for d in cfg.depths]
    if "resnet" in cfg.archs:
        out += [(f"resnet_beta{b:g}/{d}", "resnet", b, d) for b in cfg.betas
                for d in cfg.depths if d >= 2]
    return out


def _measure(cfg: Config, ctx, arch: str, beta: float | None, depth: int) -> dict:
    x = grid(cfg.lo, cfg.hi, cfg.grid, device=ctx.device)
    lag1, acfs, example = [], [], None
    for k in range(cfg.nets):
        g = ctx.generator("net", arch, beta, depth, k, device="cpu")
        model = (scalar_feedforward(depth, cfg.width, "center" if cfg.centre else "none", g)
                 if arch == "feedforward"
                 else scalar_resnet(depth, beta, cfg.width, g,
                                    embed_std=first_layer_std(cfg.first_layer, cfg.width),
                                    embed_relu=cfg.resnet_embed == "relu")).to(ctx.device)
        grad = input_gradients(model, x)[:, 0]  # (grid,) df/dx at every point
        acf = autocorrelation(grad, cfg.max_lag)
        lag1.append(float(acf[1]))
        acfs.append(acf)
        if k == 0:
            example = grad.cpu().tolist()
    mean_acf = torch.stack(acfs).mean(0)
    return {"lag1": lag1, "lag1_mean": sum(lag1) / len(lag1), "acf": mean_acf.cpu().tolist(),
            "trace": example}


def _noise(cfg: Config, ctx, kind: str) -> dict:
    g = ctx.generator("noise", kind, device=ctx.device)
    z = torch.randn(cfg.noise_draws, cfg.grid, generator=g, device=ctx.device)
    traces = z.cumsum(dim=1) if kind == "brown" else z
    acf = autocorrelation(traces, cfg.max_lag)
    lag1 = acf[:, 1].cpu().tolist()
    return {"lag1": lag1, "lag1_mean": sum(lag1) / len(lag1), "acf": acf.mean(0).cpu().tolist(),
            "trace": traces[0].cpu().tolist()}


def run(cfg: Config, ctx) -> dict:
    todo = variants(cfg)
    nets: dict[str, dict] = {}
    with ctx.progress(len(todo), "shattered_1d nets") as advance:
        for key, arch, beta, depth in todo:
            nets[key] = ctx.stage(key, lambda a=arch, b=beta, d=depth: _measure(cfg, ctx, a, b, d))
            ctx.log("lag1", depth, net=key.split("/")[0], lag1=nets[key]["lag1_mean"])
            advance(1)
    noise = {k: _noise(cfg, ctx, k) for k in ("brown", "white")}
    grid_x = torch.linspace(cfg.lo, cfg.hi, cfg.grid).tolist()
    return {"nets": nets, "noise": noise, "grid": grid_x}


def _lag1(res: dict, key: str):
    """t interval of the mean lag-1 ACF over the nets of `key`; None when not measured."""
    v = res["nets"].get(key)
    return None if v is None or len(v["lag1"]) < MIN_NETS else t_interval(v["lag1"])


def claims(res: dict, cfg: Config) -> list[Claim]:
    """Each claim needs its depth (and β) in the sweep and ≥ 3 nets, else it is not_applicable."""
    need = f"; needs ≥ {MIN_NETS} nets"
    out = []
    meta = dict(id="shallow_is_brown", statement="the 1-layer net's gradient is brown-noise-like",
                paper="Fig. 1a resembles Fig. 1d; brown noise ≈ 0.98", kind="empirical")
    e = _lag1(res, "feedforward/1")
    out.append(judge(expected="mean lag-1 ACF over nets ≥ 0.9 (1-layer net)",
                     parts=Part("depth 1", e, ">=", 0.9), **meta) if e else
               not_applicable(expected="needs depth 1 among depths, feedforward in archs" + need,
                              **meta))
    meta = dict(id="deep_feedforward_is_white",
                statement="a 24-layer mean-centred feed-forward net's gradient is white-noise-like",
                paper="Fig. 1b resembles Fig. 1e; reference −0.01", kind="empirical")
    e = _lag1(res, "feedforward/24")
    out.append(judge(expected="|mean lag-1 ACF| ≤ 0.2 at depth 24 (interval inside [−0.2, 0.2])",
                     parts=Part("depth 24", e, "in", (-0.2, 0.2)), **meta) if e else
               not_applicable(expected="needs depth 24 among depths, feedforward in archs" + need,
                              **meta))
    meta = dict(id="resnets_keep_structure",
                statement="50-layer resnets keep the gradient's spatial structure",
                paper="reference 0.87 (β=0.1), 0.65 (β=1)", kind="empirical")
    a, b = _lag1(res, "resnet_beta0.1/50"), _lag1(res, "resnet_beta1/50")
    out.append(judge(expected="mean lag-1 ACF ≥ 0.7 at β = 0.1 and ≥ 0.4 at β = 1 (depth 50)",
                     parts=[Part("beta=0.1", a, ">=", 0.7), Part("beta=1", b, ">=", 0.4)],
                     **meta) if a and b else
               not_applicable(expected="needs depth 50 among depths, betas 0.1 and 1, resnet in "
                              "archs" + need, **meta))
    return out


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = []
    # Fig. 1: traces and covariance images
    panels = [("feedforward/1", "1-layer feed-forward"), ]
    ff_deep = max((d for d in cfg.depths if f"feedforward/{d}" in res["nets"] and d <= 24),
                  default=None)
    if ff_deep and ff_deep != 1:
        panels.append((f"feedforward/{ff_deep}", f"{ff_deep}-layer feed-forward (centred)"))
    rdepth = max((d for d in cfg.depths if d >= 2), default=None)
    if rdepth is not None:
        for b in cfg.betas:
            key = f"resnet_beta{b:g}/{rdepth}"
            if key in res["nets"]:
                panels.append((key, f"{rdepth}-layer resnet, β={b:g}"))
    panels = [(k, t) for k, t in panels if k in res["nets"]]
    series = [(res["nets"][k]["trace"], t) for k, t in panels]
    series += [(res["noise"]["brown"]["trace"], "brown noise"),
               (res["noise"]["white"]["trace"], "white noise")]
    fig, axes = plots.figure(2, len(series), width=2.8, height=2.6)
    x = res["grid"]
    for j, (trace, title) in enumerate(series):
        ax = axes[0, j]
        ax.plot(x if len(trace) == len(x) else range(len(trace)), trace, lw=0.7)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("input x" if len(trace) == len(x) else "index")
        if j == 0:
            ax.set_ylabel("df/dx (one net)")
        img = covariance_image(torch.tensor(trace)).numpy()
        axes[1, j].imshow(img, cmap="gray_r", vmin=0, vmax=float(max(img.max(), 1e-12)) * 0.5)
        axes[1, j].set_xlabel("grid index")
        axes[1, j].grid(False)
        if j == 0:
            axes[1, j].set_ylabel("|covariance| / σ²")
    fig.suptitle("Gradients over a 1-D input grid at initialisation (Balduzzi et al. Fig. 1)")
    paths.append(plots.save(fig, out_dir / "fig1_gradients.png"))

    # Fig. 2: ACF per depth, one panel per architecture plus noise
    fams = []
    if "feedforward" in cfg.archs:
        fams.append(("feedforward", "feed-forward (mean-centred)"))
    if "resnet" in cfg.archs:
        fams += [(f"resnet_beta{b:g}", f"resnet, β={b:g}") for b in cfg.betas]
    fig, axes = plots.figure(1, len(fams) + 1, width=3.4, height=3.0)
    for j, (fam, title) in enumerate(fams):
        ax = axes[0, j]
        for i, d in enumerate(cfg.depths):
            key = f"{fam}/{d}"
            if key not in res["nets"]:
                continue
            acf = res["nets"][key]["acf"]
            ax.plot(range(len(acf)), acf, color=plots.COLORS[i % len(plots.COLORS)],
                    label=f"depth {d} (lag-1 {res['nets'][key]['lag1_mean']:.2f})")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(title)
        ax.set_xlabel("lag (grid steps)")
        ax.set_ylabel(f"ACF (mean of {cfg.nets} nets)")
        ax.set_ylim(-0.3, 1.02)
        ax.legend()
    ax = axes[0, -1]
    for kind, c in (("brown", "tab:brown"), ("white", "0.4")):
        acf = res["noise"][kind]["acf"]
        ax.plot(range(len(acf)), acf, color=c,
                label=f"{kind} noise (lag-1 {res['noise'][kind]['lag1_mean']:.2f})")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title("noise references")
    ax.set_xlabel("lag (grid steps)")
    ax.set_ylabel("ACF")
    ax.set_ylim(-0.3, 1.02)
    ax.legend()
    fig.suptitle("Autocorrelation of df/dx along the grid (Balduzzi et al. Fig. 2); "
                 "reference lag-1: FF10 0.77, FF24 −0.01, resnet50 β=1 0.65, β=0.1 0.87")
    paths.append(plots.save(fig, out_dir / "fig2_acf.png"))
    return paths


EXPERIMENT = Experiment(
    name="shattered_1d",
    spec="C1",
    title="gradients of 1-D rectifier nets over a grid: brown (shallow) → white (deep FF)",
    source="Balduzzi et al. 2017, The Shattered Gradients Problem, §2, Figs. 1–2",
    config=Config,
    run=run,
    claims=claims,
    plot=plot,
)
