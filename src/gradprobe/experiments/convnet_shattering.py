"""C4 `convnet_shattering` — input gradients of convnets on images whiten with depth (SPEC C4).

Balduzzi et al. 2017, "The Shattered Gradients Problem", §5, Fig. 5 (CIFAR-10): for
feed-forward convnets with batch norm, the gradients of the loss with respect to the input, one
per sample of a minibatch, become whiter with depth — their covariance over the minibatch loses
its block structure, their relative effective rank r(Γ)/r(Z) grows, and the per-coordinate
|mean| / std over the minibatch (the paper's "gradient norm") falls towards the pure-noise floor
sqrt(2/π)/sqrt(batch) — while resnets with β-rescaled skips (β = 0.1) keep their structure.

Method (SPEC C4): feed-forward convnets and pre-activation resnets (one skip per two convs,
β = 0.1), both with batch norm whose statistics come from the minibatch and are then frozen
(detached), so one backward of the summed cross-entropy gives every per-sample input gradient.
Covariance images are |correlation| between the samples' (minibatch-centred) gradients, rows
reordered by k-means (k = 10) fitted on the gradients of the row's OWN two-layer net (paper §5:
"the same permutation is used for all networks within a row"), so the resnet row is ordered by
the depth-2 resnet. Verdicts are decided over the nets (the replicates; net k of each
(architecture, depth) paired by index), Student t intervals.

Architectures (free choice `architecture`; nets/convnets.py `shattering_net`):
- 'thin' (quick scale; the SPEC's reference): constant width 16, 3×3 kernels, stride 1, He init,
  flatten → FC. On the digits stand-in: 43,418 / 48,026 / 61,850 / 94,106 / 154,010 parameters
  (FF) and 45,722 … 156,314 (resnet) at depths 2, 4, 10, 24, 50.
- 'bottleneck' (paper scale): our reading of "a slight modification of the 'bottleneck'
  architecture in He et al. (2016) … one skip-connection for every two convolutional layers",
  feed-forward and resnets "of equivalent size". He et al.'s pre-activation bottleneck (1×1
  reduce, 3×3, 1×1 expand; one skip per three convs) loses its expanding 1×1, so a skip spans
  two convs: BN → ReLU → 1×1 (64 → 16) → BN → ReLU → 3×3 (16 → 64), at width 64 / bottleneck 16
  (the first stage of He et al.'s CIFAR bottleneck resnets), stride 1, after a 3×3 stem
  (3 → 64), then BN → ReLU → global average pool → FC. "Equivalent size": the feed-forward net
  is the same stack without the skips, so both have the same parameters at every depth:
  12,618 / 22,858 / 53,578 / 125,258 / 258,378 on CIFAR-10 (3×32×32) at depths 2, 4, 10, 24, 50
  (depth = convs after the stem).

Our quick run (digits 16×16×1, a stand-in for CIFAR-10; thin nets, 16 channels, 4 nets × 4
minibatches of 256, depths 2–50; ~57 CPU-s unloaded): feed-forward relative effective rank
0.13 → 0.23 → 0.65 → 0.61 → 0.52 at depths 2, 4, 10, 24, 50 (SPEC reference 0.14 → 0.59 at 10
→ 0.50 at 50) — it rises, then saturates — while the resnet's stays at 0.11–0.13 (reference
0.04–0.07); FF |mean|/std falls 0.153 → 0.050, onto the noise floor sqrt(2/π)/sqrt(256) = 0.050
(reference 0.10 → 0.049), the resnet's stays at 0.12–0.15 (reference 0.13–0.15).
`feedforward_whitens` holds: rank_FF(50)/rank_FF(2) = 3.98 [3.03, 4.93] and
rank_FF(50)/rank_resnet(50) = 4.10 [3.53, 4.67] (≥ 3); `feedforward_signal_fades` holds:
fall_FF − fall_resnet = 0.68 [0.54, 0.82] (> 0).

Paper scale (`--scale paper`: CIFAR-10, bottleneck nets, 8 nets × 8 minibatches of 256) needs
CIFAR-10, which is not on this machine (the reader stops with exit code 2 and says where to put
it). Cost, an estimate from the layer shapes: ~0.96 G multiply-adds per image for the forward
passes of all ten nets, about twice that with the input-gradient backward, × 16,384 images
≈ 63 TFLOP: ~35 CPU-minutes on one core of this machine, well under a minute on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from gradprobe import plots
from gradprobe.claims import Claim, Part, judge, not_applicable, t_interval
from gradprobe.config import ExperimentConfig, FreeChoice, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.convnets import n_params, shattering_net
from gradprobe.probes.gradient_signal import mean_std_ratio, noise_floor
from gradprobe.probes.sample_correlation import correlation_image, decode_image, kmeans_order
from gradprobe.probes.shattering import input_gradients, relative_effective_rank
from gradprobe.runtime import derive_seed
from gradprobe.tasks.images import ImageData, find_cifar, load_images

ARCHS = ("feedforward", "resnet")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    FREE_CHOICES: ClassVar[dict[str, FreeChoice]] = {
        "architecture": FreeChoice(
            ("thin", "bottleneck"),
            "the paper's nets are 'a slight modification of the bottleneck architecture' of "
            "He et al. 2016 'of equivalent size', without blocks or widths: 'thin' is the "
            "SPEC's constant-width reference, 'bottleneck' our reading (nets/convnets.py)"),
    }
    architecture: Literal["thin", "bottleneck"] = "thin"  # see FREE_CHOICES / shattering_net
    bottleneck_width: int = 16  # inner channels of a bottleneck pair (architecture=bottleneck)
    depths: tuple[int, ...] = (2, 4, 10, 24, 50)  # conv layers (resnets: + a stem conv), Fig. 5
    dataset: Literal["digits", "cifar10"] = "digits"  # stand-in (offline) or CIFAR-10 binary
    data_dir: str | None = None  # parent of cifar-10-batches-bin (else $GRADPROBE_DATA)
    image_size: int = 16  # side of the digits stand-in, px (SPEC C4 reference: 16)
    batches: int = 4  # minibatches per net, averaged (paper: several; SPEC reference 4)
    nets: int = 4  # random nets per (architecture, depth) (SPEC reference 4)
    batch_size: int = 256  # samples per minibatch (paper: 256 on CIFAR-10)
    width: int = 16  # channels of every conv (thin; SPEC reference 16), or of the bottleneck
    # pairs' outer convs (bottleneck; paper scale 64, He et al.'s first CIFAR stage)
    beta: float = 0.1  # resnet branch scale β (paper Fig. 5)
    clusters: int = 10  # k of the k-means ordering of the covariance images (SPEC C4)
    image_samples: int = 64  # samples kept (evenly, after ordering) per stored covariance image

    @classmethod
    def smoke(cls) -> Config:
        return cls(depths=(2, 4), batches=1, nets=1, batch_size=64, width=4, image_samples=16)

    @classmethod
    def paper(cls) -> Config:
        return cls(dataset="cifar10", architecture="bottleneck", width=64, bottleneck_width=16,
                   nets=8, batches=8, image_samples=256)

    def validate(self) -> None:
        require(len(self.depths) > 0 and all(d >= 2 and d % 2 == 0 for d in self.depths),
                "depths must be even and ≥ 2 (resnets have two convs per skip)")
        require(2 in self.depths, "depths must include 2 (the k-means order and the baseline)")
        require(self.batches >= 1, "batches must be ≥ 1")
        require(self.nets >= 1, "nets must be ≥ 1")
        require(self.batch_size >= 2 * self.clusters,
                "batch_size must be ≥ 2 × clusters")
        require(self.width >= 1, "width must be ≥ 1 channel")
        require(self.bottleneck_width >= 1, "bottleneck_width must be ≥ 1 channel")
        require(self.beta > 0, "beta must be > 0")
        require(self.clusters >= 1, "clusters must be ≥ 1")
        require(8 <= self.image_size <= 64, "image_size must be in [8, 64] px")
        require(2 <= self.image_samples <= self.batch_size,
                "image_samples must be in [2, batch_size]")


def preflight(cfg: Config) -> None:
    """CIFAR-10 must be on disk before anything is written (DataError → exit 2)."""
    if cfg.dataset == "cifar10":
        find_cifar(cfg.data_dir)


def minibatches(cfg: Config, ctx, data: ImageData) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """cfg.batches disjoint minibatches of the training images (the same for every net)."""
    n = cfg.batches * cfg.batch_size
    if n > len(data.train_y):
        # not enough images for disjoint batches (digits: 1347): draw each batch separately
        g = ctx.generator("batches", device="cpu")
        idx = [torch.randperm(len(data.train_y), generator=g)[: cfg.batch_size]
               for _ in range(cfg.batches)]
    else:
        perm = torch.randperm(len(data.train_y), generator=ctx.generator("batches", device="cpu"))
        idx = list(perm[:n].reshape(cfg.batches, cfg.batch_size))
    return [(data.train_x[i.to(data.train_x.device)], data.train_y[i.to(data.train_y.device)])
            for i in idx]


def loss_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ∂ CE(f(x_i), y_i) / ∂x_i, (n, C, H, W): BN statistics of this batch, frozen."""
    return input_gradients(model, x, lambda out: F.cross_entropy(out, y, reduction="none"))


def _net(cfg: Config, ctx, data: ImageData, arch: str, depth: int, k: int) -> torch.nn.Module:
    g = ctx.generator("net", arch, depth, k, device="cpu")
    m = shattering_net(arch, depth, data.shape, data.classes, cfg.width, beta=cfg.beta,
                       architecture=cfg.architecture, bottleneck=cfg.bottleneck_width,
                       generator=g)
    return m.to(ctx.device)


def _order(cfg: Config, ctx, data: ImageData, batches, arch: str) -> dict:
    """The row's sample order: k-means of its own two-layer net's gradients (paper §5)."""
    g = loss_gradients(_net(cfg, ctx, data, arch, 2, 0), *batches[0])
    order, labels = kmeans_order(g, cfg.clusters, derive_seed(ctx.seed, "kmeans", arch))
    return {"order": order, "labels": labels}


def _measure(cfg: Config, ctx, data: ImageData, batches, order: list[int], arch: str,
             depth: int, advance) -> dict:
    """Per net (the replicate the verdicts use): rank and |mean|/std averaged over minibatches."""
    ranks, ratios, image = [], [], None
    net_rank, net_ratio = [], []
    for k in range(cfg.nets):
        model = _net(cfg, ctx, data, arch, depth, k)
        gz = ctx.generator("gaussian", arch, depth, k)
        for b, (x, y) in enumerate(batches):
            g = loss_gradients(model, x, y)
            ranks.append(relative_effective_rank(g, generator=gz))
            ratios.append(mean_std_ratio(g))
            if k == 0 and b == 0:
                image = correlation_image(g, torch.tensor(order, device=g.device),
                                          cfg.image_samples)
        net_rank.append(_mean(ranks[-len(batches):]))
        net_ratio.append(_mean(ratios[-len(batches):]))
        advance(1)
    return {"relative_rank": ranks, "mean_std": ratios,
            "relative_rank_per_net": net_rank, "mean_std_per_net": net_ratio,
            "relative_rank_mean": _mean(ranks), "mean_std_mean": _mean(ratios),
            "covariance_image": image}


def run(cfg: Config, ctx) -> dict:
    data = load_images(cfg.dataset, cfg.data_dir, size=cfg.image_size,
                       generator=ctx.generator("split", device="cpu")).to(ctx.device)
    batches = minibatches(cfg, ctx, data)
    km = {a: ctx.stage(f"kmeans_order/{a}", lambda a=a: _order(cfg, ctx, data, batches, a))
          for a in ARCHS}
    out: dict[str, dict] = {a: {} for a in ARCHS}
    total = len(ARCHS) * len(cfg.depths) * cfg.nets
    with ctx.progress(total, "convnet_shattering nets") as advance:
        for arch in ARCHS:
            for d in cfg.depths:
                out[arch][str(d)] = ctx.stage(
                    f"{arch}/{d}",
                    lambda a=arch, d=d: _measure(cfg, ctx, data, batches, km[a]["order"], a, d,
                                                 advance))
                ctx.log("shattering", d, arch=arch,
                        relative_rank=out[arch][str(d)]["relative_rank_mean"],
                        mean_std=out[arch][str(d)]["mean_std_mean"])
    params = {a: {str(d): n_params(_net(cfg, ctx, data, a, d, 0)) for d in cfg.depths}
              for a in ARCHS}
    return {"dataset": data.name, "architecture": cfg.architecture, "params": params,
            "nets": out, "kmeans_labels": {a: km[a]["labels"] for a in ARCHS},
            "noise_floor": noise_floor(cfg.batch_size),
            "batch_size": cfg.batch_size, "input_shape": list(data.shape)}


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else float("nan")


STATEMENTS = {
    "feedforward_whitens": "feed-forward gradients whiten with depth: relative effective rank at "
                           "the largest depth far above depth 2 and above the resnet's",
    "feedforward_signal_fades": "the |mean|/std ratio of the gradients falls more from depth 2 "
                                "to the largest depth for feed-forward nets than for resnets",
}


def _per_net(res: dict, arch: str, d: int, key: str) -> list[float]:
    return list(res["nets"].get(arch, {}).get(str(d), {}).get(key, []))


def claims(res: dict, cfg: Config) -> list[Claim]:
    """Both claims judged over the nets (replicates; net k of each (arch, depth) paired by index:
    the nets are independent draws, so the pairs are too), Student t intervals."""
    dm = max(cfg.depths)
    paper_w = ("Fig. 5c–d: FF rank grows much faster with depth; SPEC digits reference FF "
               "0.14 → 0.50 (d=50), resnet 0.04 → 0.07")
    paper_s = ("Fig. 5e–f: decays much faster for FF; SPEC digits reference FF 0.10 → 0.049 "
               "(floor 0.050), resnet 0.13–0.15")
    if dm <= 2:
        need = "needs a depth > 2 among depths"
        return [not_applicable("feedforward_whitens", STATEMENTS["feedforward_whitens"], need,
                               paper_w, "empirical"),
                not_applicable("feedforward_signal_fades", STATEMENTS["feedforward_signal_fades"],
                               need, paper_s, "empirical")]
    rank = {(a, d): _per_net(res, a, d, "relative_rank_per_net") for a in ARCHS for d in (2, dm)}
    sig = {(a, d): _per_net(res, a, d, "mean_std_per_net") for a in ARCHS for d in (2, dm)}
    ff2, ffm, rnm = rank["feedforward", 2], rank["feedforward", dm], rank["resnet", dm]
    up = [b / a for a, b in zip(ff2, ffm)]
    over = [a / b for a, b in zip(ffm, rnm)]
    # fall_FF − fall_resnet per pair, fall = 1 − ratio(dmax)/ratio(2)
    diff = [r1 / r0 - f1 / f0 for f0, f1, r0, r1 in
            zip(sig["feedforward", 2], sig["feedforward", dm], sig["resnet", 2], sig["resnet", dm])]
    floor = res.get("noise_floor", float("nan"))

    def means(table: dict) -> dict:
        return {f"{a}/{d}": _mean(v) for (a, d), v in table.items()}

    return [
        judge("feedforward_whitens", STATEMENTS["feedforward_whitens"],
              f"rank_FF({dm}) / rank_FF(2) ≥ 3 and rank_FF({dm}) / rank_resnet({dm}) ≥ 3 "
              "(per-net ratios, t interval over nets)", paper_w, "empirical",
              [Part(f"rank_FF({dm})/rank_FF(2)", t_interval(up), ">=", 3.0),
               Part(f"rank_FF({dm})/rank_resnet({dm})", t_interval(over), ">=", 3.0)],
              measured={"relative_rank_mean": means(rank),
                        f"rank_FF({dm})/rank_FF(2)": up,
                        f"rank_FF({dm})/rank_resnet({dm})": over}),
        judge("feedforward_signal_fades", STATEMENTS["feedforward_signal_fades"],
              "fall_FF − fall_resnet > 0, fall = 1 − ratio(dmax)/ratio(2) per net "
              f"(pure-noise floor sqrt(2/π)/sqrt(batch) = {floor:.3f})", paper_s, "empirical",
              [Part("fall_FF − fall_resnet", t_interval(diff), ">", 0.0)],
              measured={"mean_std_mean": means(sig), "fall_FF − fall_resnet": diff,
                        "noise_floor": floor}),
    ]


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    from matplotlib.ticker import NullFormatter

    out_dir = Path(out_dir)
    paths = []
    depths = sorted(cfg.depths)
    # covariance images (Fig. 5a–b)
    fig, axes = plots.figure(2, len(depths), width=2.3, height=2.4)
    for i, arch in enumerate(ARCHS):
        for j, d in enumerate(depths):
            ax = axes[i, j]
            img = decode_image(res["nets"][arch][str(d)]["covariance_image"])
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.grid(False)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{arch} depth {d}", fontsize=8)
            if j == 0:
                ax.set_ylabel("sample (k-means order)")
    fig.suptitle(f"|correlation| of per-sample input gradients over one minibatch "
                 f"({len(img)} of {cfg.batch_size} samples; each row in the k-means order of its "
                 f"own depth-2 net) — Balduzzi et al. Fig. 5a–b\n{_data_label(res)}", fontsize=9)
    paths.append(plots.save(fig, out_dir / "fig5_covariance.png"))

    # relative effective rank and mean/std vs depth (Fig. 5c–f)
    fig, axes = plots.figure(1, 2, width=4.6, height=3.6)
    for key, ax, ylabel in (("relative_rank", axes[0, 0], "relative effective rank r(Γ)/r(Z)"),
                            ("mean_std", axes[0, 1], "mean over pixels of |mean| / std")):
        for i, arch in enumerate(ARCHS):
            vals = [res["nets"][arch][str(d)][key] for d in depths]
            m = [_mean(v) for v in vals]
            sd = [(_mean([(x - mu) ** 2 for x in v])) ** 0.5 for v, mu in zip(vals, m)]
            label = "feed-forward + BN" if arch == "feedforward" else f"resnet + BN, β={cfg.beta:g}"
            ax.errorbar(depths, m, yerr=sd, marker="o", capsize=3, color=plots.COLORS[i],
                        label=label)
        ax.set_xscale("log")
        ax.set_xticks(depths)
        ax.set_xticklabels([str(d) for d in depths])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("depth (conv layers, log scale)")
        ax.set_ylabel(ylabel)
    axes[0, 0].axhline(1.0, color="0.5", ls=":", label="white noise (=1)")
    axes[0, 0].set_title(f"effective rank ({cfg.nets} nets × {cfg.batches} minibatches, ± sd)")
    axes[0, 1].axhline(res["noise_floor"], color="0.5", ls="--",
                       label=f"noise floor sqrt(2/π)/sqrt({cfg.batch_size}) = "
                             f"{res['noise_floor']:.3f}")
    axes[0, 1].set_ylim(bottom=0)
    axes[0, 1].set_title("signal vs noise within a minibatch")
    axes[0, 0].legend(loc="center left")
    axes[0, 1].legend(loc="lower left")
    fig.suptitle(f"Gradient whitening vs depth (Balduzzi et al. Fig. 5c–f)\n{_data_label(res)}\n"
                 "SPEC digits reference: FF rank 0.14 → 0.59 (d=10) → 0.50 (d=50), resnet "
                 "0.04 → 0.07; FF |mean|/std 0.10 → 0.049, resnet 0.13–0.15", fontsize=9)
    paths.append(plots.save(fig, out_dir / "fig5_rank_and_norm.png"))
    return paths


def _data_label(res: dict) -> str:
    """The dataset and nets, naming the digits stand-in as a stand-in for the paper's CIFAR-10."""
    name = res["dataset"]
    if not name.lower().startswith("cifar"):
        name += ", a stand-in for the paper's CIFAR-10"
    return f"{name}; {res.get('architecture', 'thin')} nets"


EXPERIMENT = Experiment(
    name="convnet_shattering",
    spec="C4",
    title="input gradients of convnets on images whiten with depth; resnets keep structure",
    source="Balduzzi et al. 2017, The Shattered Gradients Problem, §5, Fig. 5",
    config=Config,
    run=run,
    claims=claims,
    plot=plot,
    preflight=preflight,
)
