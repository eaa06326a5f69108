"""A6 `noise_decomposition` — decomposition as noise reduction (extended paper, §3.2 / App. A).

Shalev-Shwartz, Shamir & Shammah 2017, "Failures of Gradient-Based Deep Learning" (arXiv
1703.07950, the experiment behind §3.2's last paragraph). The inputs are the d basis vectors
e_1..e_d, each with a fixed label y ∈ [k]; the model is one affine layer d → k with a softmax
output N(x) on the simplex. Both objectives have the same expectation, −E N(x)_y:
    end-to-end     −zᵀN(x),  z_y = 1 and the other k − 1 coordinates i.i.d. uniform ±1, fresh
                    per sample (a "teacher" that only says which way is up, noisily);
    decomposition  −e_yᵀN(x).
The end-to-end gradient carries k − 1 extra zero-mean terms: its second moment at init is ~k
times the decomposition's, so with Adam it crawls for large k (paper, d = 1000: k = 10 both reach
−1.00; k = 1000: decomposition −1.00, end-to-end −0.29; k = 2000: −1.00 vs −0.24 at 2,500 steps).

The per-sample gradient of an affine layer on a basis vector is (∂ℓ/∂logits) ⊗ e_i (weights) and
∂ℓ/∂logits (bias), so its squared norm is 2‖∂ℓ/∂logits‖²: the second moments are computed from
per-sample logit gradients (torch.func), exactly, without forming k·d-sized per-sample gradients
(tested against full per-sample gradients of an nn.Linear on one-hot inputs).

Quick = the paper's settings (d = 1000, 2,500 Adam steps of 100; ~85 CPU-s): k = 10 both −1.00;
k = 100 both −1.00 (end-to-end is even faster there); k = 1000: decomposition −1.00, end-to-end
stuck near −0.45 from step 500 on (paper −0.29); k = 2000: −0.995 vs −0.26 (paper −1.00 vs
−0.24). Second-moment ratio at init: 10.0, 100, 998, 2000 (log-log slope 1.00).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from gradprobe import plots
from gradprobe.claims import finite
from gradprobe.claims import legacy_claim as Claim
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.init import trunc_normal_fan_in_

METHODS = ("e2e", "dec")
LABELS = {"e2e": "end-to-end", "dec": "decomposition"}
PAPER = {  # −N(x)_y after 2,500 iterations, d = 1000 (extended paper)
    "e2e": {10: -1.00, 1000: -0.29, 2000: -0.24},
    "dec": {10: -1.00, 1000: -1.00, 2000: -1.00},
}


@dataclass(frozen=True)
class Config(ExperimentConfig):
    ks: tuple[int, ...] = (10, 100, 1000, 2000)  # number of classes k (paper: 10, 1000, 2000)
    d: int = 1000  # input dimension = number of basis-vector inputs (paper: 1000)
    iterations: int = 2500  # Adam steps (paper: 2,500)
    batch_size: int = 100  # samples per step (paper: 100)
    lr: float = 0.1  # Adam learning rate (paper)
    beta1: float = 0.9  # Adam β1 (paper's code default)
    beta2: float = 0.99  # Adam β2 (paper)
    eps: float = 1e-5  # Adam ε (paper)
    eval_every: int = 100  # steps between evaluations (paper: 100)
    eval_samples: int = 500  # fresh samples per evaluation (paper: 500)
    moment_samples: int = 4000  # samples for the gradient second moments at init

    @classmethod
    def smoke(cls) -> Config:
        return cls(ks=(3, 30), d=50, iterations=30, eval_every=10, eval_samples=64,
                   moment_samples=256)

    def validate(self) -> None:
        require(len(self.ks) > 0 and all(k >= 2 for k in self.ks), "ks must be ≥ 2 (classes)")
        require(self.d >= 1, "d must be ≥ 1")
        require(self.iterations >= 1, "iterations must be ≥ 1")
        require(self.batch_size >= 1, "batch_size must be ≥ 1")
        require(self.lr > 0, "lr must be > 0")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1, beta2 must be in [0, 1)")
        require(self.eps > 0, "eps must be > 0")
        require(self.eval_every >= 1, "eval_every must be ≥ 1")
        require(self.eval_samples >= 1, "eval_samples must be ≥ 1")
        require(self.moment_samples >= 2, "moment_samples must be ≥ 2")


class BasisAffine(nn.Module):
    """Affine map R^d → R^k evaluated on basis vectors: forward(i) = W e_i + b = W[:, i] + b.

    Same parameters (weight (k, d), bias (k,)) and gradients as nn.Linear on one-hot inputs,
    without the (batch, d) one-hot matrix.
    """

    def __init__(self, d: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, d))
        self.bias = nn.Parameter(torch.zeros(k))
        trunc_normal_fan_in_(self.weight, generator)

    def forward(self, idx: Tensor) -> Tensor:
        return self.weight.t()[idx] + self.bias  # (b, k) logits


def teacher(y: Tensor, k: int, method: str, g: torch.Generator) -> Tensor:
    """Targets z (b, k): e_y for 'dec'; for 'e2e' z_y = 1 and the rest uniform ±1."""
    z = torch.zeros(y.shape[0], k, device=y.device)
    if method == "e2e":
        z = torch.randint(0, 2, z.shape, generator=g, device=y.device).float() * 2 - 1
    return z.scatter_(1, y[:, None], 1.0)


def objective(logits: Tensor, z: Tensor) -> Tensor:
    """Mean of −zᵀ softmax(logits) over the batch."""
    return -(z * torch.softmax(logits, dim=-1)).sum(-1).mean()


def second_moments(model: BasisAffine, labels: Tensor, k: int, n: int,
                   g: torch.Generator) -> dict[str, float]:
    """E‖ĝ‖² of the single-sample gradient (weights and bias) for both objectives at `model`."""
    idx = torch.randint(0, labels.shape[0], (n,), generator=g, device=labels.device)
    with torch.no_grad():
        logits = model(idx)  # (n, k)
    out = {}
    for m in METHODS:
        z = teacher(labels[idx], k, m, g)
        gl = vmap(grad(lambda l_, z_: objective(l_[None], z_[None])))(logits, z)  # (n, k)
        out[m] = float(2 * (gl.double() ** 2).sum(1).mean())  # ‖∂W‖² + ‖∂b‖² = 2‖∂logits‖²
    out["ratio"] = out["e2e"] / out["dec"]
    return out


def train(k: int, method: str, cfg: Config, ctx) -> dict:
    """Adam on one objective for k classes; returns −N(x)_y on fresh samples over training."""
    dev = ctx.device
    labels = torch.randint(0, k, (cfg.d,), generator=ctx.generator("labels", k))
    labels = labels.to(dev)
    model = BasisAffine(cfg.d, k, ctx.generator("init", k, device="cpu")).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                           eps=cfg.eps)
    g, g_test = ctx.generator("train", k, method), ctx.generator("test", k)
    name = f"k{k}_{method}"
    hist: dict[str, list] = {"steps": [], "objective": []}
    start, cpu = 0, 0.0
    state = ctx.load_checkpoint(name)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["g"])
        g_test.set_state(state["g_test"])
        start, hist, cpu = state["step"], state["hist"], state["cpu"]
    t0 = time.process_time()
    with ctx.progress(cfg.iterations - start, f"k={k} {LABELS[method]}") as advance:
        for step in range(start, cfg.iterations + 1):
            resumed_here = state is not None and step == start
            if (step % cfg.eval_every == 0 or step == cfg.iterations) and not resumed_here:
                with torch.no_grad():
                    idx = torch.randint(0, cfg.d, (cfg.eval_samples,), generator=g_test,
                                        device=dev)
                    val = float(objective(model(idx), teacher(labels[idx], k, "dec", g_test)))
                hist["steps"].append(step)
                hist["objective"].append(val)
                ctx.log("test", step, k=k, method=method, objective=val)
                if ctx.checkpoint_due() and step < cfg.iterations:
                    ctx.save_checkpoint({"model": model.state_dict(), "opt": opt.state_dict(),
                                         "g": g.get_state(), "g_test": g_test.get_state(),
                                         "step": step, "hist": hist,
                                         "cpu": cpu + time.process_time() - t0}, name)
            if step == cfg.iterations:
                break
            idx = torch.randint(0, cfg.d, (cfg.batch_size,), generator=g, device=dev)
            loss = objective(model(idx), teacher(labels[idx], k, method, g))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            advance(1)
    return {**hist, "final": hist["objective"][-1], "cpu_s": cpu + time.process_time() - t0}


def moments_at_init(k: int, cfg: Config, ctx) -> dict:
    labels = torch.randint(0, k, (cfg.d,), generator=ctx.generator("labels", k)).to(ctx.device)
    model = BasisAffine(cfg.d, k, ctx.generator("init", k, device="cpu")).to(ctx.device)
    return second_moments(model, labels, k, cfg.moment_samples, ctx.generator("moments", k))


def run(cfg: Config, ctx) -> dict:
    curves: dict[str, dict] = {m: {} for m in METHODS}
    moments = {}
    for k in cfg.ks:
        moments[str(k)] = ctx.stage(f"moments_k{k}", lambda k=k: moments_at_init(k, cfg, ctx))
        for m in METHODS:
            curves[m][str(k)] = ctx.stage(f"k{k}_{m}", lambda k=k, m=m: train(k, m, cfg, ctx))
    final = {m: {k: c["final"] for k, c in curves[m].items()} for m in METHODS}
    return {"curves": curves, "final_objective": final, "second_moments": moments,
            "cpu_s": sum(c["cpu_s"] for m in METHODS for c in curves[m].values())}


def _slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else math.nan


def claims(res: dict, cfg: Config) -> list[Claim]:
    f = res["final_objective"]
    small = {f"{m} k={k}": f[m][k] for m in METHODS for k in f[m] if int(k) == 10}
    large_dec = {k: v for k, v in f["dec"].items() if int(k) >= 1000}
    large_e2e = {k: v for k, v in f["e2e"].items() if int(k) >= 1000}
    large = {**{f"dec k={k}": v for k, v in large_dec.items()},
             **{f"e2e k={k}": v for k, v in large_e2e.items()}}
    mom = res["second_moments"]
    ks = sorted(mom, key=int)
    ratios = {k: mom[k]["ratio"] for k in ks}
    slope = _slope([math.log(int(k)) for k in ks], [math.log(max(r, 1e-300))
                                                    for r in ratios.values()]) \
        if len(ks) >= 2 else math.nan
    increasing = all(ratios[a] < ratios[b] for a, b in zip(ks, ks[1:]))
    it = f"after {cfg.iterations} Adam steps, d = {cfg.d}"
    return [
        Claim("both_solve_small_k", f"both objectives solve k = 10 ({it})",
              "−N(x)_y ≤ −0.95 for both methods at k = 10", small,
              bool(small) and all(finite(v) and v <= -0.95 for v in small.values()),
              "−1.00 for both at k = 10"),
        Claim("decomposition_wins_large_k",
              f"for k ≥ 1000 the decomposition solves the task, end-to-end does not ({it})",
              "for k ≥ 1000: decomposition ≤ −0.90 and end-to-end ≥ −0.50", large,
              bool(large_dec) and bool(large_e2e)
              and all(finite(v) and v <= -0.90 for v in large_dec.values())
              and all(finite(v) and v >= -0.50 for v in large_e2e.values()),
              "k = 1000: −1.00 vs −0.29; k = 2000: −1.00 vs −0.24"),
        Claim("variance_ratio_grows",
              "the gradient second-moment ratio end-to-end / decomposition at init grows ∝ k",
              "increasing in k, log-log slope in [0.8, 1.2]",
              {**{k: ratios[k] for k in ks}, "slope": slope},
              increasing and finite(slope) and 0.8 <= slope <= 1.2,
              "~k (E‖ĝ‖² ≈ 2/k end-to-end vs 2/k² decomposition)"),
    ]


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    ks = sorted(res["curves"]["e2e"], key=int)
    fig, axes = plots.figure(1, len(ks) + 1, width=3.2, height=3.0)
    colors = {"e2e": "tab:red", "dec": "tab:blue"}
    for ax, k in zip(axes[0], ks):
        for m in METHODS:
            c = res["curves"][m][k]
            ax.plot(c["steps"], c["objective"], color=colors[m],
                    label=f"{LABELS[m]} ({c['final']:.2f})")
            if int(k) in PAPER[m]:
                ax.axhline(PAPER[m][int(k)], color=colors[m], ls=":", lw=1)
        ax.axhline(-1.0 / int(k), color="grey", ls="--", lw=0.8)
        ax.set_title(f"k = {k}")
        ax.set_xlabel("training iteration")
        ax.set_ylim(-1.05, 0.02)
        ax.legend(loc="upper right")
    axes[0, 0].set_ylabel("objective −N(x)_y (500 fresh samples)")
    ax = axes[0, -1]
    mom = res["second_moments"]
    kk = [int(k) for k in ks]
    ax.loglog(kk, [mom[k]["ratio"] for k in ks], "o-", color="k", label="measured")
    ax.loglog(kk, kk, ":", color="grey", label="∝ k (ratio = k)")
    ax.set_xlabel("classes k")
    ax.set_ylabel("E‖ĝ_e2e‖² / E‖ĝ_dec‖² at init")
    ax.set_title("gradient second-moment ratio")
    ax.legend()
    fig.suptitle(f"Decomposition as noise reduction, d = {cfg.d} (dotted: paper; "
                 "dashed: chance −1/k)")
    return [plots.save(fig, out_dir / "noise_decomposition.png")]


EXPERIMENT = Experiment(
    name="noise_decomposition", spec="A6",
    title="decomposition as noise reduction: e2e vs decomposed objectives on the simplex",
    source="Shalev-Shwartz et al. 2017 (extended, arXiv 1703.07950), §3.2 / App. A",
    config=Config, run=run, claims=claims, plot=plot,
)
