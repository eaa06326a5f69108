"""C4 `convnet_shattering` — input gradients of convnets on images whiten with depth (SPEC C4).

Balduzzi et al. 2017, "The Shattered Gradients Problem", §5, Fig. 5 (CIFAR-10): for
feed-forward convnets with batch norm, the gradients of the loss with respect to the input, one
per sample of a minibatch, become whiter with depth — their covariance over the minibatch loses
its block structure, their relative effective rank r(Γ)/r(Z) grows, and the per-coordinate
|mean| / std over the minibatch (the paper's "gradient norm") falls towards the pure-noise floor
sqrt(2/π)/sqrt(batch) — while resnets with β-rescaled skips (β = 0.1) keep their structure.

Method (SPEC C4): thin convnets (constant width, 3×3 kernels, stride 1, He init) and
pre-activation resnets (one skip per two convs, β = 0.1), both with batch norm whose statistics
come from the minibatch and are then frozen (detached), so one backward of the summed
cross-entropy gives every per-sample input gradient. Covariance images are |correlation| between
the samples' (minibatch-centred) gradients, rows reordered by k-means (k = 10) fitted on the
depth-2 feed-forward net's gradients, the same order for every depth and both architectures.

Our quick run (digits stand-in 16×16×1, 16 channels, 4 nets × 4 minibatches of 256, depths
2–50; ~50 CPU-s): feed-forward relative effective rank 0.13 → 0.23 → 0.65 → 0.61 → 0.52 at depths
2, 4, 10, 24, 50 (SPEC reference 0.14 → 0.59 at 10 → 0.50 at 50) — it rises, then saturates —
while the resnet's stays at 0.11–0.13 (reference 0.04–0.07); FF |mean|/std falls 0.153 → 0.050,
onto the noise floor sqrt(2/π)/sqrt(256) = 0.050 (reference 0.10 → 0.049), the resnet's stays at
0.12–0.15 (reference 0.13–0.15).

Paper scale (CIFAR-10 3×32×32, 8 nets × 8 minibatches): 16× the quick compute, ~15 CPU-minutes
(an estimate) or seconds on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from gradprobe import plots
from gradprobe.claims import finite
from gradprobe.claims import legacy_claim as Claim
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.convnets import shattering_net
from gradprobe.probes.shattering import input_gradients, relative_effective_rank
from gradprobe.runtime import derive_seed
from gradprobe.tasks.images import ImageData, find_cifar, load_images

ARCHS = ("feedforward", "resnet")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    depths: tuple[int, ...] = (2, 4, 10, 24, 50)  # conv layers (resnets: + a stem conv), Fig. 5
    dataset: Literal["digits", "cifar10"] = "digits"  # stand-in (offline) or CIFAR-10 binary
    data_dir: str | None = None  # parent of cifar-10-batches-bin (else $GRADPROBE_DATA)
    image_size: int = 16  # side of the digits stand-in, px (SPEC C4 reference: 16)
    batches: int = 4  # minibatches per net, averaged (paper: several; SPEC reference 4)
    nets: int = 4  # random nets per (architecture, depth) (SPEC reference 4)
    batch_size: int = 256  # samples per minibatch (paper: 256 on CIFAR-10)
    width: int = 16  # channels of every conv (SPEC reference 16)
    beta: float = 0.1  # resnet branch scale β (paper Fig. 5)
    clusters: int = 10  # k of the k-means ordering of the covariance images (SPEC C4)
    image_samples: int = 64  # samples kept (evenly, after ordering) per stored covariance image

    @classmethod
    def smoke(cls) -> Config:
        return cls(depths=(2, 4), batches=1, nets=1, batch_size=64, width=4, image_samples=16)

    @classmethod
    def paper(cls) -> Config:
        return cls(dataset="cifar10", nets=8, batches=8, image_samples=256)

    def validate(self) -> None:
        require(len(self.depths) > 0 and all(d >= 2 and d % 2 == 0 for d in self.depths),
                "depths must be even and ≥ 2 (resnets have two convs per skip)")
        require(2 in self.depths, "depths must include 2 (the k-means order and the baseline)")
        require(self.batches >= 1, "batches must be ≥ 1")
        require(self.nets >= 1, "nets must be ≥ 1")
        require(self.batch_size >= 2 * self.clusters,
                "batch_size must be ≥ 2 × clusters")
        require(self.width >= 1, "width must be ≥ 1 channel")
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


def mean_std_ratio(g: torch.Tensor) -> float:
    """Mean over input coordinates of |mean| / std over the minibatch (Fig. 5's gradient norm)."""
    flat = g.reshape(g.shape[0], -1).double()
    return float((flat.mean(0).abs() / flat.std(0, unbiased=False).clamp_min(1e-30)).mean())


def correlation_image(g: torch.Tensor, order: torch.Tensor, keep: int) -> list[str]:
    """|corr| between the samples' minibatch-centred gradients, rows/cols in `order`, `keep`
    of them (evenly spaced). Stored compactly for the summary: one hex string per row, each
    entry one byte, value = round(255·|corr|) (decode with `decode_image`)."""
    flat = g.reshape(g.shape[0], -1).double()
    flat = flat - flat.mean(0, keepdim=True)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-30)
    sel = order[torch.linspace(0, len(order) - 1, keep).round().long()]
    c = (flat[sel] @ flat[sel].T).abs().clamp(0, 1)
    q = (c * 255).round().to(torch.uint8).cpu().numpy()
    return [row.tobytes().hex() for row in q]


def decode_image(rows: list[str]) -> list[list[float]]:
    """Inverse of correlation_image's encoding: |corr| values in [0, 1] (to 1/255)."""
    return [[b / 255 for b in bytes.fromhex(r)] for r in rows]


def kmeans_order(g: torch.Tensor, k: int, seed: int) -> tuple[list[int], list[int]]:
    """Sample order grouping the rows of g (n, ...) by k-means cluster (sklearn, seeded)."""
    from sklearn.cluster import KMeans

    flat = g.reshape(g.shape[0], -1).double()
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-30)
    km = KMeans(n_clusters=k, n_init=4, random_state=seed % (2**31))
    labels = km.fit_predict(flat.cpu().numpy())
    order = sorted(range(len(labels)), key=lambda i: (int(labels[i]), i))
    return order, [int(v) for v in labels]


def _net(cfg: Config, ctx, data: ImageData, arch: str, depth: int, k: int) -> torch.nn.Module:
    g = ctx.generator("net", arch, depth, k, device="cpu")
    m = shattering_net(arch, depth, data.shape, data.classes, cfg.width, beta=cfg.beta,
                       generator=g)
    return m.to(ctx.device)


def _order(cfg: Config, ctx, data: ImageData, batches) -> dict:
    g = loss_gradients(_net(cfg, ctx, data, "feedforward", 2, 0), *batches[0])
    order, labels = kmeans_order(g, cfg.clusters, derive_seed(ctx.seed, "kmeans"))
    return {"order": order, "labels": labels}


def _measure(cfg: Config, ctx, data: ImageData, batches, order: list[int], arch: str,
             depth: int, advance) -> dict:
    ranks, ratios, image = [], [], None
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
        advance(1)
    return {"relative_rank": ranks, "mean_std": ratios,
            "relative_rank_mean": _mean(ranks), "mean_std_mean": _mean(ratios),
            "covariance_image": image}


def run(cfg: Config, ctx) -> dict:
    data = load_images(cfg.dataset, cfg.data_dir, size=cfg.image_size,
                       generator=ctx.generator("split", device="cpu")).to(ctx.device)
    batches = minibatches(cfg, ctx, data)
    km = ctx.stage("kmeans_order", lambda: _order(cfg, ctx, data, batches))
    out: dict[str, dict] = {a: {} for a in ARCHS}
    total = len(ARCHS) * len(cfg.depths) * cfg.nets
    with ctx.progress(total, "convnet_shattering nets") as advance:
        for arch in ARCHS:
            for d in cfg.depths:
                out[arch][str(d)] = ctx.stage(
                    f"{arch}/{d}",
                    lambda a=arch, d=d: _measure(cfg, ctx, data, batches, km["order"], a, d,
                                                 advance))
                ctx.log("shattering", d, arch=arch,
                        relative_rank=out[arch][str(d)]["relative_rank_mean"],
                        mean_std=out[arch][str(d)]["mean_std_mean"])
    return {"dataset": data.name, "nets": out, "kmeans_labels": km["labels"],
            "noise_floor": math.sqrt(2 / math.pi) / math.sqrt(cfg.batch_size),
            "batch_size": cfg.batch_size, "input_shape": list(data.shape)}


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else float("nan")


def claims(res: dict, cfg: Config) -> list[Claim]:
    nan = float("nan")
    d0, dm = "2", str(max(cfg.depths))

    def val(arch: str, d: str, key: str) -> float:
        return res["nets"].get(arch, {}).get(d, {}).get(key, nan)

    ff2, ffm = val("feedforward", d0, "relative_rank_mean"), val("feedforward", dm,
                                                                  "relative_rank_mean")
    rnm = val("resnet", dm, "relative_rank_mean")
    r_ff2, r_ffm = val("feedforward", d0, "mean_std_mean"), val("feedforward", dm, "mean_std_mean")
    r_rn2, r_rnm = val("resnet", d0, "mean_std_mean"), val("resnet", dm, "mean_std_mean")
    fall_ff = 1 - r_ffm / r_ff2 if finite(r_ff2) and r_ff2 > 0 else nan
    fall_rn = 1 - r_rnm / r_rn2 if finite(r_rn2) and r_rn2 > 0 else nan
    floor = res.get("noise_floor", nan)
    return [
        Claim("feedforward_whitens",
              f"feed-forward gradients whiten with depth: relative effective rank at depth {dm} "
              "far above depth 2 and above the resnet's",
              f"rank_FF({dm}) ≥ 3 × rank_FF(2) and ≥ 3 × rank_resnet({dm})",
              {f"feedforward/{d0}": ff2, f"feedforward/{dm}": ffm, f"resnet/{dm}": rnm},
              finite(ff2, ffm, rnm) and ffm >= 3 * ff2 and ffm >= 3 * rnm,
              "Fig. 5c–d: FF rank grows much faster with depth; SPEC digits reference FF "
              "0.14 → 0.50 (d=50), resnet 0.04 → 0.07"),
        Claim("feedforward_signal_fades",
              f"the |mean|/std ratio of the gradients falls more from depth 2 to {dm} for "
              "feed-forward nets than for resnets",
              "relative fall 1 − ratio(dmax)/ratio(2): FF > resnet "
              f"(pure-noise floor sqrt(2/π)/sqrt(batch) = {floor:.3f})",
              {"feedforward": {d0: r_ff2, dm: r_ffm, "fall": fall_ff},
               "resnet": {d0: r_rn2, dm: r_rnm, "fall": fall_rn}, "noise_floor": floor},
              finite(fall_ff, fall_rn) and fall_ff > fall_rn,
              "Fig. 5e–f: decays much faster for FF; SPEC digits reference FF 0.10 → 0.049 "
              "(floor 0.050), resnet 0.13–0.15"),
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
                 f"({len(img)} of {cfg.batch_size} samples, k-means order from FF depth 2) — "
                 f"Balduzzi et al. Fig. 5a–b", fontsize=9)
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
    fig.suptitle(f"Gradient whitening vs depth — {res['dataset']} (Balduzzi et al. Fig. 5c–f)\n"
                 "SPEC digits reference: FF rank 0.14 → 0.59 (d=10) → 0.50 (d=50), resnet "
                 "0.04 → 0.07; FF |mean|/std 0.10 → 0.049, resnet 0.13–0.15", fontsize=9)
    paths.append(plots.save(fig, out_dir / "fig5_rank_and_norm.png"))
    return paths


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
