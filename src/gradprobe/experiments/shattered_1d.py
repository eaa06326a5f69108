"""C1 `shattered_1d` — gradients of a 1-D rectifier net over an input grid (SPEC C1).

Balduzzi et al. 2017, "The Shattered Gradients Problem", §1–2, Figs. 1–2: df/dx of a net
f: R → R over 256 equally spaced inputs in [−2, 2], at initialisation, looks like brown noise for
a 1-layer net (w, v, b ~ N(0, 1/N)), like white noise for a 24-layer mean-centred feed-forward
net (He init), and keeps its structure in a 50-layer resnet x_l = x_{l−1} + β·W ρ(BN(x_{l−1})).
Centring / BN statistics are computed over the grid itself and frozen (FrozenNorm's detached
batch statistics), so one backward of f.sum() gives all 256 derivatives. The first (scalar-input)
layer is not normalised: centring it would put every kink at x = 0.

Our quick run (20 nets, width 200, 256 points; ~12 CPU-s): lag-1 ACF 0.97 for the 1-layer net
(brown noise 0.97, reference 0.98), 0.76 at FF depth 10 (reference 0.77), 0.00 at FF depth 24
(−0.01), resnet depth 50: 0.89 at β = 0.1 (0.87) and 0.69 at β = 1 (0.65); without centring
(`--set centre=false`) FF depth 24 stays at ~0.90 (the failed public replication).

The paper does not say what the resnet's first (scalar-input) layer is. We use a linear one,
x_1 = v x + b with v, b ~ N(0, 1), then 49 blocks (depth = weight layers before the readout, as
for the FF nets). With x_1 = ρ(v x + b) instead (`--set resnet_embed=relu`) the depth-50 lag-1
ACF drops to ~0.75 (β = 0.1) and ~0.44 (β = 1), further from the reference and at the claims'
thresholds; the linear first layer lands within 0.05 of both reference values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from gradprobe import plots
from gradprobe.claims import finite
from gradprobe.claims import legacy_claim as Claim
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.mlp import MLP
from gradprobe.nets.resnet import ResNet
from gradprobe.probes.shattering import autocorrelation, covariance_image, grid, input_gradients


@dataclass(frozen=True)
class Config(ExperimentConfig):
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
    embed_std: float = 1.0  # resnet first layer v, b ~ N(0, embed_std²); our choice, see docstring
    noise_draws: int = 20  # brown / white noise references averaged like the nets

    @classmethod
    def smoke(cls) -> Config:
        return cls(depths=(1, 4), nets=2, width=32, grid=64, max_lag=16, noise_draws=2)

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
        require(self.embed_std > 0, "embed_std must be > 0")
        require(self.noise_draws >= 1, "noise_draws must be ≥ 1")


def build_feedforward(depth: int, cfg: Config, g: torch.Generator) -> torch.nn.Module:
    """depth hidden ReLU layers; first layer v, b ~ N(0, 1/N) (the 1-layer net of Fig. 1a);
    He init below; mean-centring (frozen over the grid) from layer 2; readout w ~ N(0, 1/N)."""
    n = cfg.width
    m = MLP([1] + [n] * depth + [1], "relu", norm="center" if cfg.centre else "none",
            norm_from=2, init="he", generator=g)
    with torch.no_grad():
        m[0].weight.normal_(0.0, 1.0 / math.sqrt(n), generator=g)
        m[0].bias.normal_(0.0, 1.0 / math.sqrt(n), generator=g)
        m[-1].weight.normal_(0.0, 1.0 / math.sqrt(n), generator=g)
    return m


def build_resnet(depth: int, beta: float, cfg: Config, g: torch.Generator) -> torch.nn.Module:
    """x_1 = v x + b (or ρ(v x + b)), then depth − 1 blocks x_l = x_{l−1} + β W_l ρ(BN(x_{l−1})),
    then a linear readout: depth weight layers before the readout, like the FF nets."""
    m = ResNet(cfg.width, depth - 1, beta=beta, norm="bn", in_features=1, out_features=1,
               embed_bias_std=cfg.embed_std, generator=g,
               embed_activation="relu" if cfg.resnet_embed == "relu" else None)
    with torch.no_grad():
        m.embed[0].weight.normal_(0.0, cfg.embed_std, generator=g)
    return m


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
        model = (build_feedforward(depth, cfg, g) if arch == "feedforward"
                 else build_resnet(depth, beta, cfg, g)).to(ctx.device)
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


def _lag1(res: dict, key: str) -> float | None:
    v = res["nets"].get(key)
    return None if v is None else v["lag1_mean"]


def claims(res: dict, cfg: Config) -> list[Claim]:
    nan = float("nan")
    shallow = _lag1(res, "feedforward/1")
    deep = _lag1(res, "feedforward/24")
    r01, r1 = _lag1(res, "resnet_beta0.1/50"), _lag1(res, "resnet_beta1/50")
    s = nan if shallow is None else shallow
    d = nan if deep is None else deep
    a, b = (nan if r01 is None else r01), (nan if r1 is None else r1)
    return [
        Claim("shallow_is_brown", "the 1-layer net's gradient is brown-noise-like",
              "mean lag-1 ACF ≥ 0.9 (1-layer net)", {"1": s},
              finite(s) and s >= 0.9, "brown noise ≈ 0.98; Fig. 1a resembles Fig. 1d"),
        Claim("deep_feedforward_is_white",
              "a 24-layer mean-centred feed-forward net's gradient is white-noise-like",
              "|mean lag-1 ACF| ≤ 0.2 at depth 24", {"24": d},
              finite(d) and abs(d) <= 0.2, "reference −0.01; Fig. 1b resembles Fig. 1e"),
        Claim("resnets_keep_structure", "50-layer resnets keep the gradient's spatial structure",
              "lag-1 ACF ≥ 0.7 at β = 0.1 and ≥ 0.4 at β = 1 (depth 50)",
              {"beta=0.1": a, "beta=1": b},
              finite(a, b) and a >= 0.7 and b >= 0.4, "reference 0.87 (β=0.1), 0.65 (β=1)"),
    ]


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
