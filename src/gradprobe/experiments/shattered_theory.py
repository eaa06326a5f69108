"""C2 `shattered_theory` — correlation of gradients against depth (SPEC C2).

Balduzzi et al. 2017, §3, Theorems 1–3 and Corollary 1. For the gradient r_i = Σ_p ∂f_p/∂n at
input x^(i) of a neuron n that is L layers below the output, C(i, j) = E_W[r_i r_j] and
R = C(i, j)/sqrt(C(i) C(j)) over "typical" pairs of inputs. Predictions (He init):
feed-forward with BN R = 2^−L; resnet without BN (α = β = 1) C = 2^L, R = (3/4)^L; resnet with
BN and β: R = ∏(1 + β²/(2s_l²))/∏(1 + β²/s_l²), s_l² = 1 + (l−1)β² (≈ 1/sqrt(1 + β²(L − 1)));
scalar highway γ1² = 1 − 1/L: R = (1 − 1/(2L))^L → e^{−1/2}.

Monte Carlo: the neuron n is an input coordinate of a width-N net (x ~ N(0, I_N), a batch of B
inputs per net); L = the number of ReLU layers above it; f = Σ of the N outputs. Normalisation
statistics come from the batch and are frozen, so one backward gives every r_i. E_W is the mean
over `nets` random nets and the N coordinates (exchangeable); R pools all distinct pairs:
R̂ = mean_{i≠j} Σ r_i r_j / mean_i Σ r_i², with a jackknife error over nets.

Quick (32 nets × 64 inputs, width 256, ~16 CPU-s): FF+BN R = 0.485, 0.249, 0.060, 0.0037 at
L = 1, 2, 4, 8 (2^−L: 0.5, 0.25, 0.0625, 0.0039); resnet+BN β = 0.1: 0.98, 0.96, 0.92, 0.86 at
L = 4, 8, 16, 32 (Thm 3: 0.98, 0.96, 0.93, 0.87); highway with mean-centring: 0.50, 0.56, 0.59,
0.60, 0.60, 0.60 at L = 1 … 32 (Cor. 1: the same to ±0.003).

Reported, not hidden: without BN the resnet's co-activation exceeds ¼ and R sits above (3/4)^L
from L ≥ 4 (0.38 vs 0.32 at L = 4, 0.033 vs 1e-4 at L = 32). With BN's division by the batch
std, R falls below the prediction: each branch adds a per-unit offset that BN's centring
removes, so BN divides by a smaller variance (≈ 0.68 β² per block instead of β²) than the
theorem's s_l². Resnet+BN at β = 1 gives 0.44 vs 0.49 at L = 4 and 0.11 vs 0.20 at L = 32; the
BN highway sits at 0.54 vs 0.60. The highway claim is therefore judged on the mean-centred
highway, for which the corollary's assumptions (variance 1, typical pairs) hold.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from gradprobe import plots
from gradprobe.claims import finite
from gradprobe.claims import legacy_claim as Claim
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.highway import HighwayNet
from gradprobe.nets.mlp import MLP
from gradprobe.nets.resnet import ResNet
from gradprobe.theory import shattering as th

ARCHS = ("feedforward", "resnet_bn", "resnet", "highway", "highway_bn")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    depths: tuple[int, ...] = (1, 2, 4, 8, 16, 32)  # L: ReLU layers between neuron and output
    betas: tuple[float, ...] = (0.1, 1.0)  # resnet-with-BN branch scales (Thm 3)
    archs: tuple[str, ...] = ARCHS  # feedforward (BN), resnet_bn, resnet (no BN), highway
    # (mean-centring), highway_bn (BN: reported only)
    width: int = 256  # N units per layer; SPEC C2 asks ≥ 256
    nets: int = 32  # random nets (the E_W average)
    batch: int = 64  # Gaussian inputs per net; all distinct pairs are used
    ff_max_depth: int = 16  # skip FF depths above this (R = 2^−L is below the Monte-Carlo floor)
    chunk: int = 8  # nets vmapped at once (memory only; results do not depend on it)

    @classmethod
    def smoke(cls) -> Config:
        return cls(depths=(1, 2, 4), width=32, nets=4, batch=16)

    @classmethod
    def paper(cls) -> Config:
        return cls(depths=(1, 2, 4, 8, 16, 32, 64, 100), nets=128, batch=128, width=512)

    def validate(self) -> None:
        require(len(self.depths) > 0 and all(d >= 1 for d in self.depths), "depths must be ≥ 1")
        require(all(b > 0 for b in self.betas), "betas must be > 0")
        require(set(self.archs) <= set(ARCHS) and len(self.archs) > 0,
                f"archs: choose from {', '.join(ARCHS)}")
        require(self.width >= 2, "width must be ≥ 2")
        require(self.nets >= 2, "nets must be ≥ 2 (the error bar is a jackknife over nets)")
        require(self.batch >= 2, "batch must be ≥ 2 (pairs of inputs)")
        require(self.chunk >= 1, "chunk must be ≥ 1")


def build(arch: str, depth: int, beta: float, width: int, g: torch.Generator) -> torch.nn.Module:
    """The net whose input coordinates are the neurons n, depth ReLU layers below the output."""
    if arch == "feedforward":
        return MLP([width] * (depth + 2), "relu", norm="bn", norm_from=1, init="he", generator=g)
    if arch == "resnet_bn":
        return ResNet(width, depth, beta=beta, norm="bn", generator=g)
    if arch == "resnet":
        return ResNet(width, depth, beta=1.0, norm="none", generator=g)
    if arch == "highway":
        return HighwayNet(width, depth, norm="center", generator=g)
    if arch == "highway_bn":
        return HighwayNet(width, depth, norm="bn", generator=g)
    raise ValueError(arch)


def predicted(arch: str, depth: int, beta: float) -> float:
    if arch == "feedforward":
        return th.feedforward_correlation(depth)
    if arch == "resnet_bn":
        return th.resnet_bn_correlation(depth, beta)
    if arch == "resnet":
        return th.resnet_correlation(depth, 1.0)
    return th.highway_correlation(depth)


def predicted_variance(arch: str, depth: int, beta: float) -> float:
    if arch == "resnet_bn":
        return th.resnet_bn_variance(depth, beta)
    if arch == "resnet":
        return th.resnet_variance(depth)
    return 1.0


def correlation_stats(G: torch.Tensor) -> dict:
    """G (K nets, B inputs, N coords) of r values → pooled R, C(i), jackknife SE over nets."""
    K, B, _ = G.shape
    G = G.to(torch.float64)
    s = G.sum(1)
    diag = (G * G).sum((1, 2))  # Σ_i Σ_n r_i²     per net
    off = (s * s).sum(1) - diag  # Σ_{i≠j} Σ_n r_i r_j
    num = off / (B * (B - 1))
    den = diag / B
    R = float(num.sum() / den.sum())
    jack = torch.stack([(num.sum() - num[k]) / (den.sum() - den[k]) for k in range(K)])
    se = float(math.sqrt((K - 1) / K * float(((jack - jack.mean()) ** 2).sum())))
    per_net = (num / den).tolist()
    return {"R": R, "R_se": se, "C": float(den.mean() / G.shape[2]), "R_per_net": per_net}


def _chunk_gradients(arch: str, depth: int, beta: float, cfg: Config, ctx,
                     nets: range) -> torch.Tensor:
    """r for every input coordinate of every input, for the nets in `nets`: (k, B, N)."""
    models = [build(arch, depth, beta, cfg.width, ctx.generator("net", arch, beta, depth, k,
                                                                device="cpu"))
              for k in nets]
    params, buffers = stack_module_state(models)
    params = {k: v.to(ctx.device) for k, v in params.items()}
    buffers = {k: v.to(ctx.device) for k, v in buffers.items()}
    base = copy.deepcopy(models[0]).to("meta")
    del models
    X = torch.stack([torch.randn(cfg.batch, cfg.width, device=ctx.device,
                                 generator=ctx.generator("inputs", arch, beta, depth, k))
                     for k in nets])
    X.requires_grad_(True)

    def f(p, b, x):  # batch statistics inside are detached: frozen over this batch
        return functional_call(base, (p, b), (x,))

    out = vmap(f)(params, buffers, X)
    (G,) = torch.autograd.grad(out.sum(), X)  # one backward: every r_i of every net
    return G.detach()


def measure(arch: str, depth: int, beta: float, cfg: Config, ctx) -> dict:
    """Nets are vmapped in chunks of `chunk` (memory: chunk × depth × width² weights)."""
    G = torch.cat([
        _chunk_gradients(arch, depth, beta, cfg, ctx, range(i, min(i + cfg.chunk, cfg.nets)))
        for i in range(0, cfg.nets, cfg.chunk)
    ])
    stats = correlation_stats(G)
    stats.update(predicted=predicted(arch, depth, beta),
                 predicted_C=predicted_variance(arch, depth, beta))
    return stats


def jobs(cfg: Config) -> list[tuple[str, str, int, float]]:
    out = []
    for arch in cfg.archs:
        betas = cfg.betas if arch == "resnet_bn" else (1.0,)
        for b in betas:
            for d in cfg.depths:
                if arch == "feedforward" and d > cfg.ff_max_depth:
                    continue
                name = f"resnet_bn_beta{b:g}" if arch == "resnet_bn" else arch
                out.append((name, arch, d, b))
    return out


def run(cfg: Config, ctx) -> dict:
    todo = jobs(cfg)
    res: dict[str, dict] = {}
    with ctx.progress(len(todo), "shattered_theory nets") as advance:
        for name, arch, d, b in todo:
            r = ctx.stage(f"{name}_L{d}", lambda a=arch, d=d, b=b: measure(a, d, b, cfg, ctx))
            res.setdefault(name, {})[str(d)] = r
            ctx.log("R", d, net=name, R=r["R"], predicted=r["predicted"])
            advance(1)
    return {"series": res, "highway_limit": th.highway_limit()}


def claims(res: dict, cfg: Config) -> list[Claim]:
    s = res["series"]
    ff = {L: v for L, v in s.get("feedforward", {}).items() if int(L) <= 8}
    ff_dev = {L: (math.log2(v["R"]) + int(L)) if v["R"] > 0 else float("nan")
              for L, v in ff.items()}
    rb = {L: v for L, v in s.get("resnet_bn_beta0.1", {}).items() if int(L) <= 32}
    rb_dev = {L: v["R"] - v["predicted"] for L, v in rb.items()}
    hw = s.get("highway", {})
    hw_dev = {L: v["R"] - v["predicted"] for L, v in hw.items()}

    def ok(devs: dict, tol: float) -> bool:
        return bool(devs) and all(finite(v) and abs(v) <= tol for v in devs.values())

    return [
        Claim("feedforward_halves", "feed-forward (BN, He) gradient correlation R = 2^−L",
              "|log2 R − (−L)| ≤ 0.5 for every L ≤ 8",
              {L: v["R"] for L, v in ff.items()},
              ok(ff_dev, 0.5), "Thm 1: 2^−L; reference 0.494, 0.249, 0.061, 0.0036 (L=1,2,4,8)"),
        Claim("resnet_bn_sqrt_decay", "resnet + BN, β = 0.1: R follows Thm 3's product",
              "|R − Thm 3| ≤ 0.05 for every L ≤ 32 at β = 0.1 (Thm 3: "
              + ", ".join(f"{L}: {v['predicted']:.3f}" for L, v in rb.items()) + ")",
              {L: v["R"] for L, v in rb.items()},
              ok(rb_dev, 0.05), "Thm 3 ≈ 1/sqrt(1 + β²(L−1)); reference 0.98, 0.96, 0.92, 0.86"),
        Claim("highway_depth_independent",
              "scalar highway (γ1² = 1 − 1/L): R = (1 − 1/(2L))^L, depth-independent",
              "|R − (γ1² + γ2²/2)^L| ≤ 0.05 at every L (theory: "
              + ", ".join(f"{L}: {v['predicted']:.3f}" for L, v in hw.items()) + ")",
              {L: v["R"] for L, v in hw.items()},
              ok(hw_dev, 0.05), "Cor. 1: → e^−1/2 ≈ 0.607"),
    ]


LABELS = {"feedforward": "feed-forward + BN", "resnet": "resnet, no BN (α=β=1)",
          "highway": "highway, centred (γ1²=1−1/L)", "highway_bn": "highway + BN"}
THEORY = {"feedforward": "2^−L", "resnet": "(3/4)^L", "highway": "(1−1/2L)^L",
          "highway_bn": "(1−1/2L)^L"}


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    s = res["series"]
    fig, axes = plots.figure(1, 2, width=5.2, height=4.0)
    for panel, names in enumerate((
        [n for n in ("feedforward", "resnet") if n in s] + sorted(
            n for n in s if n.startswith("resnet_bn")),
        [n for n in ("highway", "highway_bn") if n in s],
    )):
        ax = axes[0, panel]
        for i, name in enumerate(names):
            c = plots.COLORS[i % len(plots.COLORS)]
            Ls = sorted(int(L) for L in s[name])
            R = [s[name][str(L)]["R"] for L in Ls]
            se = [s[name][str(L)]["R_se"] for L in Ls]
            pos = [(L, r, e) for L, r, e in zip(Ls, R, se) if r > 0]
            label = LABELS.get(name, name.replace("resnet_bn_beta", "resnet + BN, β="))
            if pos:
                ax.errorbar([p[0] for p in pos], [p[1] for p in pos], [p[2] for p in pos],
                            fmt="o", color=c, ms=4, capsize=2, label=f"{label}: measured")
            fine = list(range(1, max(Ls) + 1))
            pred = [predicted_line(name, L) for L in fine]
            theo = THEORY.get(name, "Thm 3 product, β=" + name.removeprefix("resnet_bn_beta"))
            if name != "highway_bn":  # same prediction as "highway"
                ax.plot(fine, pred, "-", color=c, lw=1, alpha=0.8, label=f"theory {theo}")
        if panel == 1:
            ax.axhline(res["highway_limit"], color="k", ls=":", lw=1, label="e^−1/2 limit")
            ax.set_ylim(0.3, 0.8)
        ax.set_xscale("log", base=2)
        if panel == 0:
            ax.set_yscale("log")
        ax.set_xlabel("L: layers between neuron and output (log2)")
        ax.set_ylabel("gradient correlation R" + (" (log)" if panel == 0 else ""))
        ax.set_title(["Thms 1–3: R vs depth", "Cor. 1: highway nets"][panel])
        ax.legend(fontsize=7)
    fig.suptitle(f"Correlation of gradients between inputs ({cfg.nets} nets × {cfg.batch} "
                 f"inputs, width {cfg.width}; ±1 jackknife s.e.)")
    return [plots.save(fig, Path(out_dir) / "correlation_vs_depth.png")]


def predicted_line(name: str, L: int) -> float:
    if name.startswith("resnet_bn_beta"):
        return th.resnet_bn_correlation(L, float(name.removeprefix("resnet_bn_beta")))
    arch = {"highway_bn": "highway"}.get(name, name)
    return predicted(arch, L, 1.0)


EXPERIMENT = Experiment(
    name="shattered_theory",
    spec="C2",
    title="gradient correlation vs depth: 2^−L (FF), (3/4)^L, ~1/sqrt(L) (resnet+BN), highway",
    source="Balduzzi et al. 2017, The Shattered Gradients Problem, §3, Thms 1–3, Cor. 1",
    config=Config,
    run=run,
    claims=claims,
    plot=plot,
)
