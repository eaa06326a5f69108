"""B1 `vanishing` — per-layer gradient speeds and the product bound (SPEC B1).

Nielsen, "Neural Networks and Deep Learning", ch. 5 "Why are deep neural networks hard to
train?": in a sigmoid net [n_in, 30, 30, 30, 30, 10] (weights N(0, 1/n_in), biases N(0, 1),
quadratic cost C = ½‖y − a^L‖²) the speed ‖δ^l‖ = ‖∂C/∂b^l‖ of the first hidden layer is ~100×
smaller than that of the last (MNIST: 0.003, 0.017, 0.070, 0.285), because
δ^l = Σ'(z^l)(W^{l+1})ᵀ … Σ'(z^L)(a^L − y) and each factor σ' ≤ ¼: per example
‖∂C/∂b^l‖ ≤ γ^{L−l+1} ∏_{r>l} ‖W^r‖₂ ‖a^L − y‖ and ‖∂C/∂W^l‖ ≤ ‖∂C/∂b^l‖‖a^{l−1}‖.

We measure per-example gradients with `gradprobe.probes.layers.layer_gradients` (torch.func) on
1,000 sklearn digits (8×8, offline) for sigmoid, tanh (same init) and ReLU (He init, zero biases)
nets with 3, 4 and 8 hidden layers of 30 units (output: sigmoid), 5 random nets each, in float64,
and check the bound on every layer, example and net. Quick (~20 CPU-s): 4 hidden sigmoid
layers give speeds ≈ 0.0007, 0.003, 0.014, 0.070 (first/last 0.009; Nielsen on MNIST 0.003,
0.017, 0.070, 0.285, ratio 0.011); He ReLU nets stay within 0.82–1.03; the bound is never
violated (measured/bound reaches 0.95–0.999 at the sigmoid output layer, where σ' ≈ ¼, and is
orders of magnitude loose in the first sigmoid layers).
The training figure follows the speeds of the 4-hidden sigmoid net under SGD (Nielsen's figure):
for ~12 epochs the net sits on a plateau (accuracy 0.1) with the first layer 20–100× slower
than the last; then the early layers speed up, the four speeds meet and the training accuracy
climbs to ~0.99 by epoch 50 (at Nielsen's η = 0.1 the gap persists, as in his MNIST figure).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from gradprobe import plots
from gradprobe.claims import finite
from gradprobe.claims import legacy_claim as Claim
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.mlp import MLP
from gradprobe.probes.layers import layer_gradients

ACTS = ("sigmoid", "tanh", "relu")
NIELSEN = {3: [0.012, 0.060, 0.283], 4: [0.003, 0.017, 0.070, 0.285]}  # MNIST, ch. 5


@dataclass(frozen=True)
class Config(ExperimentConfig):
    activations: tuple[str, ...] = ACTS  # hidden activations compared
    hidden_layers: tuple[int, ...] = (3, 4, 8)  # hidden layers per net (Nielsen: 2–4)
    width: int = 30  # units per hidden layer (Nielsen)
    examples: int = 1000  # examples the speeds are averaged over (Nielsen: 1,000)
    nets: int = 5  # random nets per (activation, depth)
    data: Literal["digits", "gaussian"] = "digits"  # sklearn digits (/16) or N(0, I_64) inputs
    train_epochs: int = 50  # SGD epochs for the speed-during-training figure (0: skip)
    train_hidden: int = 4  # hidden layers of the trained sigmoid net
    train_batch: int = 10  # mini-batch size (Nielsen)
    lr: float = 3.0  # SGD step η: Nielsen's ch. 1 rate (at his ch. 5 0.1 the digits net sits on
    # the sigmoid plateau for the whole quick budget; at 3.0 it leaves it after ~15 epochs)

    @classmethod
    def smoke(cls) -> Config:
        return cls(hidden_layers=(2, 4), examples=64, nets=1, train_epochs=1, train_batch=32)

    @classmethod
    def paper(cls) -> Config:
        return cls(hidden_layers=(2, 3, 4, 8, 16), nets=20, train_epochs=100)

    def validate(self) -> None:
        require(len(self.activations) > 0 and set(self.activations) <= set(ACTS),
                f"activations: choose from {', '.join(ACTS)}")
        require(len(self.hidden_layers) > 0 and all(h >= 1 for h in self.hidden_layers),
                "hidden_layers must be ≥ 1")
        require(self.width >= 1, "width must be ≥ 1")
        require(2 <= self.examples <= 1797, "examples must be in [2, 1797] (digits has 1,797)")
        require(self.nets >= 1, "nets must be ≥ 1")
        require(self.train_epochs >= 0, "train_epochs must be ≥ 0")
        require(self.train_hidden >= 1, "train_hidden must be ≥ 1")
        require(self.train_batch >= 1, "train_batch must be ≥ 1")
        require(self.lr > 0, "lr must be > 0")


def load_data(cfg: Config, ctx) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 64), one-hot targets (n, 10)) in float64, shuffled with the run's seed."""
    g = ctx.generator("data", device="cpu")
    if cfg.data == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.data, dtype=torch.float64) / 16.0
        labels = torch.tensor(d.target)
    else:
        x = torch.randn(1797, 64, generator=g, dtype=torch.float64)
        labels = torch.randint(0, 10, (1797,), generator=g)
    perm = torch.randperm(x.shape[0], generator=g)
    y = torch.nn.functional.one_hot(labels, 10).to(torch.float64)
    return x[perm].to(ctx.device), y[perm].to(ctx.device)


def quadratic(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C = ½‖y − a^L‖² per example."""
    return 0.5 * ((out - y) ** 2).sum(dim=-1)


def build(act: str, hidden: int, cfg: Config, g: torch.Generator) -> torch.nn.Module:
    """Nielsen's init for sigmoid/tanh (N(0, 1/n_in) weights, N(0, 1) biases); He for ReLU."""
    sizes = [64] + [cfg.width] * hidden + [10]
    if act == "relu":
        m = MLP(sizes, "relu", out_activation="sigmoid", init="he", bias_std=0.0, generator=g)
    else:
        m = MLP(sizes, act, out_activation="sigmoid", init="lecun", bias_std=1.0, generator=g)
    return m.to(torch.float64)


def measure(act: str, hidden: int, cfg: Config, ctx, x, y) -> dict:
    speeds, wspeeds, bounds, worst, worst_w = [], [], [], [], []
    for k in range(cfg.nets):
        model = build(act, hidden, cfg, ctx.generator("net", act, hidden, k, device="cpu"))
        model = model.to(ctx.device)
        lg = layer_gradients(model, quadratic, (x, y))
        assert lg.bound is not None and lg.weight_bound is not None
        speeds.append(lg.mean_bias_norms.tolist())
        wspeeds.append(lg.mean_weight_norms.tolist())
        bounds.append(lg.bound.mean(0).tolist())
        worst.append(float((lg.bias_norms / lg.bound).max()))
        worst_w.append(float((lg.weight_norms / lg.weight_bound).max()))
    s = np.array(speeds)
    return {
        "speed": s.mean(0).tolist(), "speed_min": s.min(0).tolist(), "speed_max": s.max(0).tolist(),
        "speed_per_net": speeds, "weight_speed": np.array(wspeeds).mean(0).tolist(),
        "bound": np.array(bounds).mean(0).tolist(),
        "max_ratio_bias": max(worst), "max_ratio_weight": max(worst_w),
        "first_over_last_hidden": float(s[:, 0].mean() / s[:, hidden - 1].mean()),
    }


def train(cfg: Config, ctx, x, y) -> dict:
    """SGD on the quadratic cost; the hidden layers' speeds on the eval examples every epoch."""
    model = build("sigmoid", cfg.train_hidden, cfg, ctx.generator("train_net", device="cpu"))
    model = model.to(ctx.device)
    ev = (x[: cfg.examples], y[: cfg.examples])
    g = ctx.generator("batches", device="cpu")
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    history = {"epoch": [], "speed": [], "accuracy": []}

    def record(epoch: int) -> None:
        lg = layer_gradients(model, quadratic, ev)
        with torch.no_grad():
            acc = float((model(x).argmax(1) == y.argmax(1)).double().mean())
        history["epoch"].append(epoch)
        history["speed"].append(lg.mean_bias_norms[: cfg.train_hidden].tolist())
        history["accuracy"].append(acc)
        ctx.log("train", epoch, speed=history["speed"][-1], accuracy=acc)

    start = 1
    state = ctx.load_checkpoint("train")
    if state is None:
        record(0)
    else:  # resume after the last finished epoch: same model, optimiser, batches, history
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["g"])
        history = state["history"]
        start = int(state["epoch"]) + 1
    n = x.shape[0]
    with ctx.progress(cfg.train_epochs, "vanishing: SGD epochs") as advance:
        advance(start - 1)
        for epoch in range(start, cfg.train_epochs + 1):
            perm = torch.randperm(n, generator=g).to(x.device)
            for i in range(0, n, cfg.train_batch):
                idx = perm[i: i + cfg.train_batch]
                opt.zero_grad()
                # Nielsen's update: gradient of the mean per-example cost over the mini-batch
                quadratic(model(x[idx]), y[idx]).mean().backward()
                opt.step()
            record(epoch)
            advance(1)
            if ctx.checkpoint_due():
                ctx.save_checkpoint({"model": model.state_dict(), "opt": opt.state_dict(),
                                     "g": g.get_state(), "history": history, "epoch": epoch},
                                    "train")
    return history


def run(cfg: Config, ctx) -> dict:
    x, y = load_data(cfg, ctx)
    xe, ye = x[: cfg.examples], y[: cfg.examples]
    nets: dict[str, dict] = {}
    todo = [(a, h) for a in cfg.activations for h in cfg.hidden_layers]
    with ctx.progress(len(todo), "vanishing: nets") as advance:
        for a, h in todo:
            key = f"{a}/{h}"
            nets[key] = ctx.stage(key, lambda a=a, h=h: measure(a, h, cfg, ctx, xe, ye))
            ctx.log("speed", h, activation=a, speed=nets[key]["speed"])
            advance(1)
    training = ctx.stage("train", lambda: train(cfg, ctx, x, y)) if cfg.train_epochs else None
    return {"nets": nets, "training": training, "nielsen": {str(k): v for k, v in NIELSEN.items()},
            "data": cfg.data}


def claims(res: dict, cfg: Config) -> list[Claim]:
    nan = float("nan")
    ratios = {k: max(v["max_ratio_bias"], v["max_ratio_weight"]) for k, v in res["nets"].items()}
    sig = res["nets"].get("sigmoid/4", {}).get("first_over_last_hidden", nan)
    relu = {k.split("/")[1]: v["first_over_last_hidden"] for k, v in res["nets"].items()
            if k.startswith("relu/")}
    return [
        Claim("bound_holds", "‖∂C/∂b^l‖ and ‖∂C/∂W^l‖ never exceed the product bound",
              "max over layers, examples and nets of measured/bound ≤ 1", ratios,
              bool(ratios) and all(finite(r) and r <= 1.0 + 1e-9 for r in ratios.values()),
              "a bound (inequality), no number"),
        Claim("sigmoid_vanishes", "4 hidden sigmoid layers: the first learns far slower",
              "speed(first hidden)/speed(last hidden) ≤ 0.1 (4 hidden layers)", {"4": sig},
              finite(sig) and sig <= 0.1, "0.003/0.285 ≈ 0.011 (Nielsen, MNIST)"),
        Claim("he_relu_balanced", "ReLU with He init keeps the speeds balanced",
              "speed(first hidden)/speed(last hidden) in [0.2, 5] for every depth", relu,
              bool(relu) and all(finite(r) and 0.2 <= r <= 5 for r in relu.values()),
              "He et al. 2015: variance preserved across layers"),
    ]


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = []
    acts = [a for a in cfg.activations]
    fig, axes = plots.figure(1, len(acts), width=4.0, height=3.4)
    for j, a in enumerate(acts):
        ax = axes[0, j]
        for i, h in enumerate(cfg.hidden_layers):
            v = res["nets"].get(f"{a}/{h}")
            if v is None:
                continue
            c = plots.COLORS[i % len(plots.COLORS)]
            layers = np.arange(1, h + 1)
            ax.plot(layers, v["speed"][:h], "o-", color=c, ms=3, label=f"{h} hidden: measured")
            ax.fill_between(layers, v["speed_min"][:h], v["speed_max"][:h], color=c, alpha=0.2)
            ax.plot(layers, v["bound"][:h], "--", color=c, lw=1, label=f"{h} hidden: bound")
            if a == "sigmoid" and h in NIELSEN:
                ax.plot(layers, NIELSEN[h], "x", color=c, ms=7, mew=2,
                        label=f"{h} hidden: Nielsen (MNIST)")
        ax.set_yscale("log")
        ax.set_xlabel("hidden layer l")
        ax.set_ylabel("speed ‖∂C/∂b^l‖ (mean over examples, log)")
        ax.set_title(f"{a} ({'He init' if a == 'relu' else 'N(0,1/n_in) init'})")
        ax.legend(fontsize=6, ncol=1)
    fig.suptitle(f"Speed of learning per hidden layer at initialisation ({cfg.data}, "
                 f"{cfg.examples} examples, band = min–max over {cfg.nets} nets; dashed = "
                 "product bound γ^(L−l+1)∏‖W‖₂‖a^L−y‖)")
    paths.append(plots.save(fig, out_dir / "speed_per_layer.png"))

    tr = res.get("training")
    if tr:
        fig, axes = plots.figure(1, 2, width=4.6, height=3.4)
        ax = axes[0, 0]
        sp = np.array(tr["speed"])
        for l in range(sp.shape[1]):
            ax.plot(tr["epoch"], sp[:, l], "o-", ms=3, label=f"hidden layer {l + 1}")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("speed ‖∂C/∂b^l‖ (log)")
        ax.set_title(f"sigmoid, {cfg.train_hidden} hidden layers, SGD η={cfg.lr:g}")
        ax.legend()
        ax = axes[0, 1]
        ax.plot(tr["epoch"], tr["accuracy"], "o-", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training accuracy")
        ax.set_ylim(0, 1)
        ax.set_title("accuracy during training")
        fig.suptitle("Speed of learning during training (Nielsen ch. 5)")
        paths.append(plots.save(fig, out_dir / "speed_training.png"))
    return paths


EXPERIMENT = Experiment(
    name="vanishing",
    spec="B1",
    title="per-layer gradient speeds vs the product bound: sigmoid vanishes, He-ReLU balanced",
    source="Nielsen, Neural Networks and Deep Learning, ch. 5 (Why are deep nets hard to train?)",
    config=Config,
    run=run,
    claims=claims,
    plot=plot,
)
