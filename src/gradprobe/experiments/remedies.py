"""E1 `remedies` — which remedy keeps deep nets trainable, and why (SPEC E1).

The three papers diagnose why gradients fail (vanishing speeds, shattered input gradients, low
SNR); the field has since proposed remedies. Here every remedy (gradprobe.nets.remedies: plain
He ReLU, ReLU + BN, β-scaled resnet, ReZero, SkipInit, Fixup, looks-linear CReLU, orthogonal
ReLU, orthogonal tanh at criticality, DKS, TAT, NF-ResNet with scaled weight standardisation) is
built as a fully connected net of width 64 on the digits stand-in (64-d, 10 classes, as in B1) at
every depth, and measured with the same instruments, at init and after a fixed Adam budget:

    lag1        input-gradient lag-1 ACF along segments between test inputs (gp.probe's
                shattering measure; a constant trace, i.e. a net linear along the segment,
                counts as 1: nothing shattered)
    rel_rank    relative effective rank of the input gradients over a batch (C4)
    speed_ratio log10 of speed(first layer)/speed(last layer), speed = mean_i ‖∂ℓ_i/∂z^l‖ (B1)
    bound_gap   log10 of the product bound over the measured first-layer speed, for the nets
                that are chains of affine layers and known elementwise activations (B1)
    min_snr     log10 of the smallest per-layer batch-gradient SNR (A5)
    coact       mean co-activation of the rectifier layers (C3; not defined for tanh)
    lin_err     linearity error max|f(x) − A x|/max|f(x)| (C5)

and test accuracy after training (Adam, 100 steps of 128 at every depth; probes after training
at the largest depth only). TAT's C(0) target η = 0.9 is unreachable below ~16 leaky-ReLU layers:
those rows are skipped and the results say why; without the `dks` extra DKS/TAT are skipped.

Quick run (4 seeds, depths 2/8/32/50, ~206 CPU-s): at depth 50 lag-1 at init is 1.0 for ReZero,
SkipInit, Fixup and looks-linear (linear at init), 0.95 DKS and orthogonal tanh, 0.88 resnet
β = 0.1, 0.84 NF scaled WS, 0.71 TAT, 0.50 orthogonal ReLU, 0.39 plain He ReLU, −0.01 ReLU + BN
(whose first/last speed ratio is 10^4); test accuracy 0.95–0.97 for the residual and LL nets,
0.92–0.94 for DKS/TAT/orthogonal tanh, 0.63 orthogonal ReLU, 0.41 He ReLU, 0.10 ReLU + BN.
remedies_keep_correlation fails (ReLU + BN lies below plain ReLU; orthogonal ReLU and TAT
overlap it; the other eight are separated above); correlation_predicts_trainability holds
(Spearman 0.73, bootstrap [0.19, 0.97]). README "Remedies, measured".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from gradprobe.claims import (
    Claim,
    Estimate,
    Part,
    bootstrap_interval,
    judge,
    not_applicable,
    t_interval,
)
from gradprobe.config import ExperimentConfig, FreeChoice, require
from gradprobe.diagnosis.report import probe
from gradprobe.experiments.base import Experiment
from gradprobe.nets import remedies as R
from gradprobe.probes.activity import activity
from gradprobe.probes.linearity import linearity_error
from gradprobe.probes.segment_lag1 import segment_lag1
from gradprobe.tasks.images import load_digits_standin
from gradprobe.training.fit import fit

PROBES = ("lag1", "rel_rank", "speed_ratio", "bound_gap", "min_snr", "coact", "lin_err")
LABELS = {"relu": "ReLU (He)", "relu_bn": "ReLU + BN", "resnet": "resnet β=0.1",
          "rezero": "ReZero", "skipinit": "SkipInit", "fixup": "Fixup",
          "looks_linear": "looks-linear", "orthogonal": "orthogonal ReLU",
          "orthogonal_tanh": "orthogonal tanh", "dks": "DKS (tanh)", "tat": "TAT (leaky ReLU)",
          "scaled_ws": "NF scaled WS"}
PAPER = ("Bachlechner et al. 2020; De & Smith 2020; Zhang et al. 2019; Brock et al. 2021; "
         "Xiao et al. 2018; Martens et al. 2021; Zhang et al. 2022; Balduzzi et al. 2017")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    FREE_CHOICES: ClassVar[dict[str, FreeChoice]] = {
        "fixup_zero_readout": FreeChoice(
            (True, False), "Fixup zeroes the classifier (Zhang et al. rule 2); then every hidden "
            "gradient is 0 at init and the speed probes read 0"),
        "lr": FreeChoice((1e-3, 3e-3), "SPEC E1 fixes a training budget, not the optimiser"),
    }

    depths: tuple[int, ...] = (2, 8, 32, 50)  # hidden layers / residual branches (SPEC E1 quick)
    variants: tuple[str, ...] = R.VARIANTS  # see gradprobe.nets.remedies
    width: int = 64  # units per hidden layer (SPEC E1: ≥ 64)
    seeds: int = 4  # nets per (variant, depth): the replicates of every interval (D0: ≥ 3)
    probe_batch: int = 32  # test inputs for the batch probes (speeds, SNR, rank, co-activation)
    segments: int = 16  # segments between pairs of test inputs for the lag-1 ACF
    points: int = 48  # inputs along each segment
    steps: int = 100  # Adam steps at every depth (the fixed training budget)
    batch: int = 128  # minibatch size
    lr: float = 1e-3  # Adam learning rate
    beta: float = 0.1  # the resnet's branch scale (C1)
    fixup_zero_readout: bool = True  # Zhang et al. 2019, rule 2

    @classmethod
    def smoke(cls) -> Config:
        return cls(depths=(2, 4), variants=("relu", "rezero", "fixup", "looks_linear",
                                            "scaled_ws"),
                   width=16, seeds=2, probe_batch=16, segments=2, points=16, steps=5, batch=16)

    @classmethod
    def paper(cls) -> Config:
        return cls(depths=(2, 8, 32, 64), seeds=5, steps=3000, width=128, probe_batch=128)

    def validate(self) -> None:
        require(len(self.depths) > 0 and all(d >= 1 for d in self.depths), "depths must be ≥ 1")
        require(len(self.variants) > 0 and set(self.variants) <= set(R.VARIANTS),
                f"variants: choose from {', '.join(R.VARIANTS)}")
        require(self.width >= 2, "width must be ≥ 2")
        require(self.seeds >= 1, "seeds must be ≥ 1")
        require(4 <= self.probe_batch <= 450, "probe_batch must be in [4, 450] (test split)")
        require(self.segments >= 1 and 2 * self.segments <= 450,
                "segments must be ≥ 1 and ≤ 225 (pairs of test inputs)")
        require(self.points >= 3, "points must be ≥ 3")
        require(self.steps >= 0 and self.batch >= 2 and self.lr > 0,
                "steps ≥ 0, batch ≥ 2, lr > 0")


def _data(ctx):
    d = load_digits_standin(size=8, generator=ctx.generator("split", device="cpu"))
    flat = (d.train_x.flatten(1), d.train_y, d.test_x.flatten(1), d.test_y)
    return tuple(t.to(ctx.device) for t in flat)


def _build(cfg: Config, variant: str, depth: int, seed: int, ctx) -> torch.nn.Module:
    g = ctx.generator("net", variant, depth, seed, device="cpu")
    net = R.build(variant, depth, cfg.width, 64, 10, g, beta=cfg.beta,
                  fixup_zero_readout=cfg.fixup_zero_readout)
    return net.to(ctx.device)


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y)  # batch mean; gp.probe applies it to one sample at a time


def measure(model: torch.nn.Module, cfg: Config, x_train, x_test, y_test, seed: int) -> dict:
    """Every E1 probe on `model` (batch norm calibrated on training inputs and frozen)."""
    R.for_probing(model, x_train[:256])
    xb, yb = x_test[: cfg.probe_batch], y_test[: cfg.probe_batch]
    # gp.probe's own segments are not used (segment_lag1 below handles linear nets): keep them
    # minimal; its relative rank is over the batch's input gradients
    rep = probe(model, _loss, (xb, yb), max_samples=cfg.probe_batch, segments=1, points=4,
                seed=seed)
    speeds = [d["speed"] for d in rep.layers]
    ratio = speeds[0] / speeds[-1] if speeds[-1] > 0 else math.nan
    bound = rep.layers[0]["bound"]
    snrs = [d["batch_snr"] for d in rep.layers if d["batch_snr"] is not None]
    seg = segment_lag1(model, x_test[: 2 * cfg.segments], cfg.segments, cfg.points,
                       torch.Generator().manual_seed(seed))
    rect = [m for m in R.hidden_activations(model)
            if not isinstance(m, torch.nn.Tanh) and getattr(m, "name", "") != "DKS tanh"]
    coact = float(activity(model, xb, modules=rect).coactivation.mean()) if rect else math.nan
    acc = _accuracy(model, x_train, x_test, y_test)
    out = {
        "lag1": seg.lag1, "constant_segments": seg.constant,
        "rel_rank": rep.shattering.get("relative_rank", math.nan),
        "speed_ratio": _log10(ratio), "speed_first": speeds[0], "speed_last": speeds[-1],
        "bound_gap": _log10(bound / speeds[0]) if bound and speeds[0] > 0 else None,
        "min_snr": _log10(min(snrs)) if snrs and min(snrs) > 0 else None,
        "coact": None if math.isnan(coact) else coact,
        "lin_err": linearity_error(model, xb, x_train[0]),
        "accuracy": acc,
    }
    # NaN (e.g. the effective rank of all-zero gradients) → None: undefined, not diverged
    return {k: v if v is None or math.isfinite(v) else None for k, v in out.items()}


def _accuracy(model: torch.nn.Module, x_train, x_test, y_test) -> float:
    """Test accuracy, batch norm calibrated on training inputs and frozen."""
    R.for_probing(model, x_train[:256])
    with torch.no_grad():
        return float((model(x_test).argmax(1) == y_test).float().mean())


def _log10(v: float) -> float | None:
    return math.log10(v) if v is not None and math.isfinite(v) and v > 0 else None


def train(model: torch.nn.Module, cfg: Config, ctx, key: str, x_train, y_train) -> dict:
    """Adam for cfg.steps minibatch steps on cross-entropy (batch norm in training mode)."""
    R.for_training(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = ctx.generator("batches", key, device="cpu")
    n = x_train.shape[0]

    def step(i: int) -> torch.Tensor:
        idx = torch.randint(0, n, (cfg.batch,), generator=g).to(x_train.device)
        opt.zero_grad()
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        loss.backward()
        opt.step()
        return loss.detach()

    res = fit(ctx, key, steps=cfg.steps, step=step, state={"model": model, "opt": opt, "g": g},
              log=False, description=f"remedies: train {key}")
    last = res.history[-1]["train_loss"] if res.history else None
    return {"train_loss": last, "diverged_at": res.diverged_at}


def _one(cfg: Config, ctx, variant: str, depth: int, data) -> dict:
    """Probes at init, training (test accuracy), and at the largest depth probes after training,
    for every seed of (variant, depth)."""
    x_train, y_train, x_test, y_test = data
    out: dict = {"init": [], "trained": [], "train": []}
    for s in range(cfg.seeds):
        try:
            model = _build(cfg, variant, depth, s, ctx)
        except R.NotBuildable as e:
            return {"skipped": str(e)}
        out["init"].append(measure(model, cfg, x_train, x_test, y_test, s))
        key = f"{variant}_d{depth}_s{s}"
        out["train"].append(train(model, cfg, ctx, key, x_train, y_train))
        if depth == max(cfg.depths):
            out["trained"].append(measure(model, cfg, x_train, x_test, y_test, s))
        else:
            out["trained"].append({"accuracy": _accuracy(model, x_train, x_test, y_test)})
    return out


def run(cfg: Config, ctx) -> dict:
    data = _data(ctx)
    have_dks = R.dks_available()
    skipped = {v: "the optional `dks` extra is not installed (pip install 'gradprobe[dks]')"
               for v in cfg.variants if v in R.NEEDS_DKS and not have_dks}
    todo = [(v, d) for v in cfg.variants if v not in skipped for d in cfg.depths]
    nets: dict[str, dict] = {}
    with ctx.progress(len(todo), "remedies: variants × depths") as advance:
        for v, d in todo:
            key = f"{v}/{d}"
            nets[key] = ctx.stage(key, lambda v=v, d=d: _one(cfg, ctx, v, d, data))
            if "skipped" not in nets[key]:
                ctx.log("remedy", d, variant=v,
                        lag1=float(np.mean([m["lag1"] for m in nets[key]["init"]])),
                        accuracy=float(np.mean([m["accuracy"] for m in nets[key]["trained"]])))
            advance(1)
    return {"nets": nets, "skipped_variants": skipped, "largest_depth": max(cfg.depths),
            "dataset": "digits 8×8 (64-d, sklearn stand-in, 1347/450 split)"}


def _values(res: dict, variant: str, depth: int, when: str, probe_name: str) -> list[float]:
    entry = res["nets"].get(f"{variant}/{depth}", {})
    return [math.nan if m.get(probe_name) is None else float(m[probe_name])
            for m in entry.get(when, [])]


def spearman(rows: np.ndarray) -> float:
    """Rank correlation of the two columns of rows (n, 2), ties given their average rank."""
    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for u in np.unique(v):  # average ranks of ties
            tie = v == u
            r[tie] = r[tie].mean()
        return r
    a, b = ranks(rows[:, 0]), ranks(rows[:, 1])
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else math.nan


def separation(a: Estimate, b: Estimate) -> Estimate:
    """a − b with the interval [a.lo − b.hi, a.hi − b.lo]: it lies above 0 exactly when a's
    interval lies wholly above b's, below 0 when wholly below, and straddles 0 when they
    overlap (SPEC E1's "intervals separated")."""
    return Estimate(a.value - b.value, a.lo - b.hi, a.hi - b.lo,
                    f"difference of two intervals ({a.method}; {b.method})", min(a.n, b.n))


def claims(res: dict, cfg: Config) -> list[Claim]:
    L = max(cfg.depths)
    built = [v for v in cfg.variants if "init" in res["nets"].get(f"{v}/{L}", {})]
    st1 = ("at the largest depth at init, each remedy's input-gradient lag-1 lies above plain "
           "ReLU's (intervals separated)")
    exp1 = ("per remedy: its t interval over seeds lies wholly above plain ReLU's (depth "
            f"{L}); statistic = difference of means, interval [lo_r − hi_relu, hi_r − lo_relu]: "
            "> 0 separated above, < 0 separated below, else overlapping")
    remedies = [v for v in built if v != "relu"]
    if "relu" not in built or not remedies:
        c1 = not_applicable("remedies_keep_correlation", st1,
                            "needs plain ReLU and at least one remedy at the largest depth",
                            PAPER, "empirical")
    else:
        base = t_interval(_values(res, "relu", L, "init", "lag1"))
        parts = [Part(v, separation(t_interval(_values(res, v, L, "init", "lag1")), base), ">",
                      0.0) for v in remedies]
        measured = {v: float(np.mean(_values(res, v, L, "init", "lag1"))) for v in built}
        measured["relu_interval"] = base.interval
        c1 = judge("remedies_keep_correlation", st1, exp1, PAPER, "empirical", parts,
                   measured=measured, figure="remedies_heatmap.png")
    st2 = ("across variants at the largest depth, lag-1 at init and test accuracy after "
           "training are positively rank-correlated")
    exp2 = "Spearman ρ > 0, percentile-bootstrap interval over variants above 0"
    by_variant = {v: (float(np.mean(_values(res, v, L, "init", "lag1"))),
                      float(np.mean(_values(res, v, L, "trained", "accuracy")))) for v in built}
    by_variant = {v: r for v, r in by_variant.items() if all(math.isfinite(x) for x in r)}
    rows = list(by_variant.values())
    if len(rows) < 4:
        c2 = not_applicable("correlation_predicts_trainability", st2,
                            "needs ≥ 4 variants measured at the largest depth", PAPER,
                            "empirical")
    else:
        est = bootstrap_interval(np.array(rows), spearman)
        c2 = judge("correlation_predicts_trainability", st2, exp2, PAPER, "empirical",
                   Part("spearman", est, ">", 0.0),
                   measured={"spearman": est.value, "interval": est.interval,
                             "variants": by_variant},
                   figure="remedies_vs_depth.png")
    return [c1, c2]


def _mean(values: list[float]) -> float:
    """Mean over the defined values (NaN when there are none)."""
    ok = [v for v in values if math.isfinite(v)]
    return float(np.mean(ok)) if ok else math.nan


def _table(res: dict, cfg: Config, when: str) -> tuple[list[str], np.ndarray]:
    L = max(cfg.depths)
    names = [v for v in cfg.variants if when in res["nets"].get(f"{v}/{L}", {})]
    cols = list(PROBES) + (["accuracy"] if when == "trained" else [])
    return names, np.array([[_mean(_values(res, v, L, when, p)) for p in cols] for v in names])


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from gradprobe import plots

    out_dir = Path(out_dir)
    paths = []
    L = max(cfg.depths)
    fig, axes = plots.figure(1, 2, width=6.2, height=0.42 * len(cfg.variants) + 1.8)
    for ax, when in zip(axes[0], ("init", "trained")):
        names, vals = _table(res, cfg, when)
        if not names:
            continue
        cols = list(PROBES) + (["accuracy"] if when == "trained" else [])
        shade = vals.copy()
        j_lin = cols.index("lin_err")  # spans 0 to 10^4: coloured on a log scale
        shade[:, j_lin] = np.log10(np.clip(shade[:, j_lin], 1e-8, None))
        ok = np.isfinite(shade)
        lo = np.where(ok, shade, np.inf).min(0)
        hi = np.where(ok, shade, -np.inf).max(0)
        norm = (shade - lo) / np.where(hi > lo, hi - lo, 1.0)  # each probe on its own scale
        cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
        ax.imshow(np.ma.masked_invalid(norm), cmap=cmap, aspect="auto", vmin=0, vmax=1)
        for i in range(vals.shape[0]):
            for j in range(vals.shape[1]):
                txt = "n/a" if not math.isfinite(vals[i, j]) else f"{vals[i, j]:.2g}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=6,
                        color="k" if not math.isfinite(norm[i, j]) or norm[i, j] >= 0.5 else "w")
        ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right")
        ax.set_yticks(range(len(names)), [LABELS.get(n, n) for n in names])
        ax.grid(False)
        ax.set_title(f"{'at init' if when == 'init' else f'after {cfg.steps} Adam steps'} "
                     f"(depth {L}; colour: per column)")
    fig.suptitle(f"Remedies × probes, width {cfg.width}, mean over {cfg.seeds} seeds "
                 "(log10 for speed_ratio, bound_gap, min_snr; grey: n/a)")
    paths.append(plots.save(fig, out_dir / "remedies_heatmap.png"))

    fig, axes = plots.figure(1, 2, width=5.2, height=3.8)
    for i, v in enumerate(cfg.variants):
        ds = [d for d in cfg.depths if "trained" in res["nets"].get(f"{v}/{d}", {})]
        if not ds:
            continue
        col = plots.COLORS[i % len(plots.COLORS)]
        style = "-" if i < len(plots.COLORS) else "--"
        for ax, (when, key) in zip(axes[0], (("trained", "accuracy"), ("init", "lag1"))):
            m = [_mean(_values(res, v, d, when, key)) for d in ds]
            ax.plot(ds, m, style, marker="o", ms=3, color=col, label=LABELS.get(v, v))
    axes[0, 0].set_ylabel("test accuracy after training")
    axes[0, 0].set_ylim(0, 1)
    axes[0, 1].set_ylabel("input-gradient lag-1 at init")
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xticks(list(cfg.depths), [str(d) for d in cfg.depths])
        ax.minorticks_off()
        ax.set_xlabel("depth (hidden layers / residual branches)")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"Accuracy and gradient correlation against depth ({cfg.steps} Adam steps, "
                 f"lr {cfg.lr:g}, mean over {cfg.seeds} seeds)")
    paths.append(plots.save(fig, out_dir / "remedies_vs_depth.png"))
    return paths


EXPERIMENT = Experiment(
    name="remedies",
    spec="E1",
    title="remedies (ReZero, SkipInit, Fixup, LL, orthogonal, DKS/TAT, NF) under the same probes",
    source="SPEC E1: remedies measured by the probes of Balduzzi et al., Nielsen, Shalev-Shwartz",
    config=Config,
    run=run,
    claims=claims,
    plot=plot,
)
