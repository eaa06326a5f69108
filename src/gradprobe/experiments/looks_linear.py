"""C5 `looks_linear` — the looks-linear initialisation trains very deep rectifier nets (SPEC C5).

Balduzzi et al. 2017, "The Shattered Gradients Problem", §6, Fig. 6 (CIFAR-10): thin plain
convnets (8 filters at the input up to 64, doubling at each stride-2 reduction, one FC layer)
get steadily worse with depth, with ReLU below the linear baseline at 198 layers; a CReLU net
with the looks-linear (LL) init — mirrored [W, −W] delta-orthogonal weights, so the net is
exactly linear (unshattered) at initialisation — trains about as well as a resnet. CReLU filter
counts are × 1/sqrt(2) for parameter parity. All nets use batch norm, Adam with a plateau
learning-rate schedule, and the paper's augmentation (shifts up to 4 px on 32×32, i.e. 1/8 of
the side, and horizontal flips).

Our quick run (digits stand-in 16×16×1, 1347/450 split, 2-px shifts, no flips on digits, depths
12 and 52, 2 seeds, 6 epochs; ~135 CPU-s): depth 52 — CReLU+LL 0.92–0.97 (SPEC reference
0.93–0.98), ResNet 0.91–0.94 (0.80–0.89), linear 0.70–0.83 (0.64–0.66), CReLU (He) 0.14–0.15
(0.15–0.16), ReLU 0.10–0.13 (0.12–0.22); depth 12 — all 0.86–0.97. At init the LL net matches
f(x) = A·x (A = Jacobian at one reference input) to 5e-7–6e-7 relative; the He ReLU net misses
by 1.5 (depth 12) and 8.6 (depth 52).

Paper scale (CIFAR-10, depths 12–198, 100 epochs, 3 seeds: the paper gives neither) needs a GPU;
its run time is an estimate, see `Config.paper`.
"""

from __future__ import annotations

import dataclasses
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
from gradprobe.nets.convnets import MODELS, build_model, n_params, stage_plan
from gradprobe.tasks.images import ImageData, augment, find_cifar, load_images

LABELS = {"crelu_ll": "CReLU + LL", "crelu": "CReLU (He)", "resnet": "ResNet",
          "relu": "ReLU", "linear": "linear", "prelu_ll": "PReLU(a=1) + LL"}


@dataclass(frozen=True)
class Config(ExperimentConfig):
    depths: tuple[int, ...] = (12, 52)  # weight layers (convs + FC); even, ≥ 10 (paper: ≤ 198)
    models: tuple[str, ...] = ("crelu_ll", "crelu", "resnet", "relu", "linear")  # SPEC C5
    dataset: Literal["digits", "cifar10"] = "digits"  # stand-in (offline) or CIFAR-10 binary
    data_dir: str | None = None  # parent of cifar-10-batches-bin (else $GRADPROBE_DATA)
    image_size: int = 16  # side of the digits stand-in, px (SPEC C5 reference: 16)
    train_limit: int | None = None  # use only the first N training images (smoke tests)
    seeds: int = 2  # trained models per (model, depth); the paper averages several
    epochs: int = 6  # passes over the training set (SPEC C5 reference: 6 on digits)
    batch: int = 64  # minibatch size (SPEC C5 reference)
    lr: float = 1e-3  # Adam's initial learning rate (SPEC C5 reference)
    widths: tuple[int, ...] = (8, 16, 32, 64)  # ReLU filters per stage, paper §6
    shift: int | None = None  # max translation, px; None → side/8 (4 px on 32×32, paper §6)
    flip: bool | None = None  # random horizontal flips; None → on for CIFAR-10 (paper §6), off
    # for the digits stand-in (a mirrored digit is another glyph, not the same label)
    plateau_per_epoch: int = 2  # training-loss measurements per epoch (plateau schedule)
    plateau_window: int = 4  # measurements the loss decrease is taken over (paper: 10 epochs)
    plateau_patience: int = 3  # measurements in a row below threshold before a drop (paper: 5)
    plateau_threshold: float = 0.02  # relative loss decrease over the window counted as progress
    plateau_factor: float = 0.1  # learning-rate multiplier at each drop
    linearity_batch: int = 64  # test images for the f(x) = A·x check

    @classmethod
    def smoke(cls) -> Config:
        return cls(depths=(10,), models=("crelu_ll", "relu"), seeds=1, epochs=1,
                   train_limit=256, linearity_batch=8)

    @classmethod
    def paper(cls) -> Config:
        # An estimate, not measured: training costs 6·MACs per image = 6 × (5.2 + 13.5 + 27.7 +
        # 56 + 115) M MACs over the five depths × 50,000 images × 100 epochs ≈ 6.5 PFLOP per
        # (model, seed), ≈ 98 PFLOP for 5 models × 3 seeds: ~3–5 hours on one H100 (these
        # 8–64-channel convs reach ~10 TFLOP/s at best; at depth 198 a step is launch-bound,
        # ~15 ms), weeks on a laptop CPU. Epochs and seeds are our assumptions.
        return cls(depths=(12, 26, 50, 98, 198), dataset="cifar10", seeds=3, epochs=100,
                   batch=128, plateau_per_epoch=1, plateau_window=10, plateau_patience=5,
                   plateau_threshold=0.01)

    def validate(self) -> None:
        n = len(self.widths)
        require(len(self.depths) > 0 and all(d % 2 == 0 and d >= 2 * n + 2 for d in self.depths),
                f"depths must be even and ≥ {2 * n + 2} (convs + FC, {n} stages)")
        require(len(self.models) > 0 and set(self.models) <= set(MODELS),
                f"models: choose from {', '.join(MODELS)}")
        require(self.seeds >= 1, "seeds must be ≥ 1")
        require(self.epochs >= 1, "epochs must be ≥ 1")
        require(self.batch >= 2, "batch must be ≥ 2 (batch norm)")
        require(self.lr > 0, "lr must be > 0")
        require(all(w >= 2 for w in self.widths), "widths must be ≥ 2")
        require(8 <= self.image_size <= 64, "image_size must be in [8, 64] px")
        require(self.shift is None or self.shift >= 0, "shift must be ≥ 0 px")
        require(self.train_limit is None or self.train_limit >= self.batch,
                "train_limit must be ≥ batch")
        require(self.plateau_per_epoch >= 1, "plateau_per_epoch must be ≥ 1")
        require(self.plateau_window >= 1, "plateau_window must be ≥ 1")
        require(self.plateau_patience >= 1, "plateau_patience must be ≥ 1")
        require(0 <= self.plateau_threshold < 1, "plateau_threshold must be in [0, 1)")
        require(0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)")
        require(self.linearity_batch >= 1, "linearity_batch must be ≥ 1")


def preflight(cfg: Config) -> None:
    """CIFAR-10 must be on disk before anything is written (DataError → exit 2)."""
    if cfg.dataset == "cifar10":
        find_cifar(cfg.data_dir)


def load_data(cfg: Config, ctx) -> ImageData:
    data = load_images(cfg.dataset, cfg.data_dir, size=cfg.image_size,
                       generator=ctx.generator("split", device="cpu"))
    if cfg.train_limit is not None:
        data = dataclasses.replace(data, train_x=data.train_x[: cfg.train_limit],
                                   train_y=data.train_y[: cfg.train_limit])
    return data.to(ctx.device)


# ---- the linearity check ----------------------------------------------------------------------
def linearity_error(model: torch.nn.Module, x: torch.Tensor, x_ref: torch.Tensor,
                    affine: bool = False) -> float:
    """max |f(x) − A·x| / max |f(x)| over the batch x, A = ∂f/∂x at the ONE input x_ref.

    affine=True compares f(x) − f(x_ref) with A·(x − x_ref) instead (ignores a constant offset,
    e.g. batch norm's running mean after training). A per-input Jacobian would prove nothing:
    a bias-free ReLU net is positively homogeneous, so f(x) = J(x)·x for every one of them.
    """
    with torch.no_grad():
        fx = model(x)  # (n, classes)
        f0 = model(x_ref.unsqueeze(0))[0]
    jac = torch.autograd.functional.jacobian(lambda z: model(z.unsqueeze(0))[0], x_ref)
    a = jac.reshape(fx.shape[1], -1)  # (classes, input size)
    if affine:
        pred = (x - x_ref).flatten(1) @ a.T + f0
    else:
        pred = x.flatten(1) @ a.T
    return float((fx - pred).abs().max() / fx.abs().max().clamp_min(1e-30))


def _linearity(cfg: Config, ctx, data: ImageData) -> dict:
    """Relative error of the one-Jacobian linear fit at init, BN in eval mode, per model/depth.
    The PReLU(a = 1) LL variant is always checked too (no training needed)."""
    x = data.test_x[: cfg.linearity_batch]
    x_ref = data.train_x[0]
    out = {}
    for name in list(cfg.models) + [m for m in ("prelu_ll",) if m not in cfg.models]:
        for d in cfg.depths:
            m = build_model(name, d, data.shape, data.classes, cfg.widths,
                            generator=ctx.generator("init", name, d, 0, device="cpu"))
            m = m.to(ctx.device).eval()
            out[f"{name}/{d}"] = linearity_error(m, x, x_ref)
    return out


# ---- training -----------------------------------------------------------------------------------
class Plateau:
    """Plateau schedule after Balduzzi et al. §6's auto-scheduler: every measurement is the mean
    training loss since the last one; when the relative decrease over the last `window`
    measurements stays below `threshold` for `patience` measurements in a row, lr *= factor.
    State is plain numbers (checkpointable)."""

    def __init__(self, cfg: Config) -> None:
        self.window, self.patience = cfg.plateau_window, cfg.plateau_patience
        self.threshold, self.factor = cfg.plateau_threshold, cfg.plateau_factor
        self.history: list[float] = []
        self.bad = 0
        self.drops = 0

    def step(self, loss: float, opt: torch.optim.Optimizer) -> None:
        self.history.append(loss)
        if len(self.history) <= self.window:
            return
        old = self.history[-1 - self.window]
        rate = (old - loss) / max(abs(old), 1e-12)
        self.bad = self.bad + 1 if rate < self.threshold else 0
        if self.bad >= self.patience:
            for group in opt.param_groups:
                group["lr"] *= self.factor
            self.bad = 0
            self.drops += 1
            self.history = self.history[-1:]

    def state(self) -> dict:
        return {"history": list(self.history), "bad": self.bad, "drops": self.drops}

    def load(self, s: dict) -> None:
        self.history, self.bad, self.drops = list(s["history"]), int(s["bad"]), int(s["drops"])


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 500) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + chunk]).argmax(1) == y[i:i + chunk]).sum())
                  for i in range(0, len(y), chunk))
    model.train()
    return correct / len(y)


def augmentation(cfg: Config, data: ImageData) -> tuple[int, bool]:
    """(max shift in px, flips?) after resolving the dataset defaults."""
    shift = cfg.shift if cfg.shift is not None else round(data.shape[-1] / 8)
    flip = cfg.flip if cfg.flip is not None else cfg.dataset == "cifar10"
    return shift, flip


def train_one(cfg: Config, ctx, data: ImageData, name: str, depth: int, seed: int,
              advance=None) -> dict:
    """Train one model; returns final test accuracy, per-epoch curves and learning-rate drops."""
    model = build_model(name, depth, data.shape, data.classes, cfg.widths,
                        generator=ctx.generator("init", name, depth, seed, device="cpu"))
    model = model.to(ctx.device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = Plateau(cfg)
    g_order = ctx.generator("order", name, depth, seed, device="cpu")
    g_aug = ctx.generator("augment", name, depth, seed)
    shift, flip = augmentation(cfg, data)
    n = len(data.train_y)
    steps = n // cfg.batch  # drop the last partial batch
    per = max(1, steps // cfg.plateau_per_epoch)
    ckpt = f"train_{name}_{depth}_{seed}"
    curves = {"train_loss": [], "test_acc": [], "lr": []}
    start = 0
    state = ctx.load_checkpoint(ckpt)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load(state["sched"])
        g_order.set_state(state["g_order"])
        g_aug.set_state(state["g_aug"].to(g_aug.get_state().device))
        curves, start = state["curves"], int(state["epoch"])
    diverged = False
    for epoch in range(start, cfg.epochs):
        order = torch.randperm(n, generator=g_order).to(ctx.device)
        running, count, total, total_n = 0.0, 0, 0.0, 0
        for k in range(steps):
            idx = order[k * cfg.batch:(k + 1) * cfg.batch]
            xb = augment(data.train_x[idx], g_aug, shift=shift, flip=flip)
            loss = F.cross_entropy(model(xb), data.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lv = loss.detach().item()
            if not math.isfinite(lv):
                diverged = True
                break
            running, count = running + lv, count + 1
            total, total_n = total + lv, total_n + 1
            if count == per or k == steps - 1:
                sched.step(running / count, opt)
                running, count = 0.0, 0
        if diverged:
            break
        acc = accuracy(model, data.test_x, data.test_y)
        curves["train_loss"].append(total / max(total_n, 1))
        curves["test_acc"].append(acc)
        curves["lr"].append(opt.param_groups[0]["lr"])
        ctx.log("train", epoch + 1, model=name, depth=depth, seed=seed,
                train_loss=curves["train_loss"][-1], test_acc=acc, lr=curves["lr"][-1])
        if advance is not None:
            advance(1)
        if ctx.checkpoint_due() and epoch + 1 < cfg.epochs:
            ctx.save_checkpoint({"model": model.state_dict(), "opt": opt.state_dict(),
                                 "sched": sched.state(), "g_order": g_order.get_state(),
                                 "g_aug": g_aug.get_state().cpu(), "curves": curves,
                                 "epoch": epoch + 1}, ckpt)
    final = float("nan") if diverged else accuracy(model, data.test_x, data.test_y)
    return {"test_acc": final, "curves": curves, "lr_drops": sched.drops,
            "diverged": diverged, "params": n_params(model)}


def run(cfg: Config, ctx) -> dict:
    data = load_data(cfg, ctx)
    linear = ctx.stage("linearity", lambda: _linearity(cfg, ctx, data))
    runs: dict[str, dict] = {}
    todo = [(m, d, s) for d in cfg.depths for m in cfg.models for s in range(cfg.seeds)]
    with ctx.progress(len(todo) * cfg.epochs, "looks_linear training (epochs)") as advance:
        for m, d, s in todo:
            key = f"{m}/{d}/{s}"
            runs[key] = ctx.stage(key, lambda m=m, d=d, s=s: train_one(cfg, ctx, data, m, d, s,
                                                                         advance))
    acc = {m: {str(d): [runs[f"{m}/{d}/{s}"]["test_acc"] for s in range(cfg.seeds)]
               for d in cfg.depths} for m in cfg.models}
    mean = {m: {d: _mean(v) for d, v in acc[m].items()} for m in cfg.models}
    params = {m: {str(d): runs[f"{m}/{d}/0"]["params"] for d in cfg.depths} for m in cfg.models}
    curves = {m: {str(d): _mean_curves([runs[f"{m}/{d}/{s}"]["curves"]
                                        for s in range(cfg.seeds)]) for d in cfg.depths}
              for m in cfg.models}
    shift, flip = augmentation(cfg, data)
    return {"dataset": data.name, "augmentation": {"shift_px": shift, "flip": flip},
            "accuracy": acc, "accuracy_mean": mean, "params": params,
            "curves": curves, "linearity_error": linear,
            "lr_drops": {k: v["lr_drops"] for k, v in runs.items()},
            "plans": {str(d): len(stage_plan(d, cfg.widths)) + 1 for d in cfg.depths}}


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else float("nan")


def _mean_curves(cs: list[dict]) -> dict:
    out = {}
    for k in ("train_loss", "test_acc"):
        n = min(len(c[k]) for c in cs)
        out[k] = [_mean([c[k][i] for c in cs]) for i in range(n)]
    return out


def claims(res: dict, cfg: Config) -> list[Claim]:
    nan = float("nan")
    dmax = str(max(cfg.depths))
    mean = res["accuracy_mean"]

    def acc(m: str) -> float:
        return mean.get(m, {}).get(dmax, nan)

    lin = res["linearity_error"]
    ll_keys = [k for k in lin if k.split("/")[0] in ("crelu_ll", "prelu_ll")]
    ll_vals = [lin[k] for k in ll_keys]
    measured_lin = {k: lin[k] for k in ll_keys}
    contrast = {f"{k} (He, contrast)": v for k, v in lin.items()
                if k.split("/")[0] == "relu"}
    ll, rn, rl = acc("crelu_ll"), acc("resnet"), acc("relu")
    return [
        Claim("ll_is_linear_at_init",
              "a looks-linear-initialised CReLU net is exactly linear at init (BN in eval mode)",
              "max|f(x) − A·x| ≤ 1e-5·max|f(x)| over a batch, A = Jacobian at one fixed input, "
              "every depth",
              {**measured_lin, **contrast},
              bool(ll_vals) and finite(*ll_vals) and all(v <= 1e-5 for v in ll_vals),
              "exactly linear by construction (§6); SPEC reference ~1e-6, nonlinear nets 0.4–50"),
        Claim("ll_matches_resnet_deep",
              f"at the largest depth ({dmax}), CReLU + LL trains about as well as the ResNet",
              "accuracy(CReLU+LL) ≥ accuracy(ResNet) − 0.05 (mean over seeds)",
              {"crelu_ll": ll, "resnet": rn},
              finite(ll, rn) and ll >= rn - 0.05,
              "Fig. 6 (CIFAR-10, 198 layers): CReLU+LL ≈ ResNet; SPEC digits d=52: "
              "0.93–0.98 vs 0.80–0.89"),
        Claim("plain_relu_degrades",
              f"at the largest depth ({dmax}), the plain ReLU net falls well behind CReLU + LL",
              "accuracy(ReLU) ≤ accuracy(CReLU+LL) − 0.10 (mean over seeds)",
              {"relu": rl, "crelu_ll": ll},
              finite(ll, rl) and rl <= ll - 0.10,
              "Fig. 6: ReLU below the linear baseline (~40%) at 198 layers; SPEC digits d=52: "
              "ReLU 0.12–0.22"),
    ]


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = []
    depths = sorted(cfg.depths)
    fig, axes = plots.figure(1, 2, width=5.0, height=3.8)
    ax = axes[0, 0]
    for i, m in enumerate(cfg.models):
        acc = res["accuracy"][m]
        ys = [_mean(acc[str(d)]) for d in depths]
        lo = [min(acc[str(d)]) for d in depths]
        hi = [max(acc[str(d)]) for d in depths]
        c = plots.COLORS[i % len(plots.COLORS)]
        ax.plot(depths, ys, "o-", color=c, label=LABELS.get(m, m))
        ax.fill_between(depths, lo, hi, color=c, alpha=0.15)
    _depth_axis(ax, depths)
    ax.set_xlabel("depth (weight layers, log scale)")
    ax.set_ylabel(f"test accuracy (mean, band = min–max of {cfg.seeds} seeds)")
    ax.set_ylim(0, 1.02)
    ax.axhline(0.1, color="0.6", lw=0.8, ls=":", label="chance")
    aug = res.get("augmentation", {})
    ax.set_title(f"Accuracy vs depth — {res['dataset']}\naugmentation: shifts ≤ "
                 f"{aug.get('shift_px', '?')} px, flips {'on' if aug.get('flip') else 'off'}; "
                 f"{cfg.epochs} epochs, Adam + plateau schedule, BN", fontsize=8)
    ax.legend(loc="lower left")
    # paper's Fig. 6 endpoints beside ours (CIFAR-10, 198 layers; read off the figure/text)
    ax.text(0.99, 0.55, "paper (CIFAR-10, 198 layers):\nReLU < linear (~0.4),\n"
            "CReLU+LL ≈ ResNet", transform=ax.transAxes, ha="right", va="center", fontsize=7)
    ax = axes[0, 1]
    dmax = str(max(depths))
    for i, m in enumerate(cfg.models):
        cv = res["curves"][m][dmax]["test_acc"]
        ax.plot(range(1, len(cv) + 1), cv, "o-", ms=3, color=plots.COLORS[i % len(plots.COLORS)],
                label=LABELS.get(m, m))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Training at depth {dmax}")
    ax.legend(loc="center right")
    fig.suptitle("Looks-linear initialisation vs depth (Balduzzi et al. 2017, Fig. 6)")
    paths.append(plots.save(fig, out_dir / "fig6_accuracy_vs_depth.png"))

    lin = res["linearity_error"]
    fig, axes = plots.figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    keys = list(lin)
    vals = [max(lin[k], 1e-12) for k in keys]
    # green: linear by construction (LL inits and the linear net); gray: rectifier nets
    colors = ["tab:green" if k.split("/")[0] in ("crelu_ll", "prelu_ll", "linear") else "tab:gray"
              for k in keys]
    ax.barh(range(len(keys)), vals, color=colors)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([f"{LABELS.get(k.split('/')[0], k)}, depth {k.split('/')[1]}"
                        for k in keys], fontsize=7)
    ax.set_xscale("log")
    ax.axvline(1e-5, color="tab:red", ls="--", label="tolerance 1e-5")
    ax.set_xlabel("max|f(x) − A·x| / max|f(x)|  (A = Jacobian at one input; log scale)")
    ax.set_title("Linearity at initialisation (BN in eval mode)")
    ax.legend()
    paths.append(plots.save(fig, out_dir / "linearity_at_init.png"))
    return paths


def _depth_axis(ax, depths: list[int]) -> None:
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.xaxis.set_minor_formatter(NullFormatter())


EXPERIMENT = Experiment(
    name="looks_linear",
    spec="C5",
    title="looks-linear init: deep CReLU nets train like resnets, plain ReLU nets do not",
    source="Balduzzi et al. 2017, The Shattered Gradients Problem, §6, Fig. 6",
    config=Config,
    run=run,
    claims=claims,
    plot=plot,
    preflight=preflight,
)
