"""A8 `flat_activation` — flat activations and a non-gradient update (SPEC A8).

Shalev-Shwartz, Shamir, Shammah 2017, "Failures of Gradient-Based Deep Learning", extended
version §5 (ICML version §4, last paragraph): the target is y = u(v*ᵀx + b*) with u a known step
function. Its derivative is zero almost everywhere, so gradient descent through a smoothed u
stalls on a flat region (`smooth_approx`); replacing u by a generic network (`end_to_end`,
regression) or by one logit per step (`multiclass`) learns, but is noisy or blurry at the jumps;
the non-gradient update w ← w − η E[(u(wᵀx) − y) x] (forward through u, backward as if u were the
identity; `forward_only`) recovers u(r) best.

Our quick run (3 seeds trained together, 5,000 steps for every variant, 20,000 test inputs;
~60 CPU-s): mean test MSE smooth_approx 0.60 (per seed 0.85, 0.10, 0.85: flat output),
end_to_end 2.0e-3, multiclass 1.2e-3, forward_only 1.2e-4 (reference, seeds 0–2: 1.55, 1.4e-3,
1.1e-3, 3.8e-4); smooth_approx / forward_only ≈ 5,000.
The smoothing temperature of `smooth_approx` is not given in the paper: τ = 0.005 (config
`smooth_temperature`). A jump at distance d from the initial output r̂ = 0 then has slope
~e^{−d/τ}/τ, far below Adam's eps (1e-5) once d ≳ 0.1; with τ = 0.02 the sigmoid tails reach
the nearest jump (b* − round(b*) is always within 0.5) and smooth_approx learns on most seeds.
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
from gradprobe.tasks import steps as task

Variant = Literal["smooth_approx", "end_to_end", "multiclass", "forward_only"]
VARIANTS = ("smooth_approx", "end_to_end", "multiclass", "forward_only")
BETAS = (0.9, 0.99)  # SPEC A8
ADAM_EPS = 1e-5  # SPEC A8
CHUNK = 10  # steps whose inputs are drawn at once
SMALL_B = 0.25  # |b*| below this: the smoothed staircase has a gradient at init (SPEC A8)


@dataclass(frozen=True)
class Config(ExperimentConfig):
    variants: tuple[Variant, ...] = VARIANTS  # SPEC A8
    iterations: int = 5_000  # Adam steps of the three gradient variants (paper: 10,000)
    forward_only_iterations: int = 5_000  # steps of the forward-only update (paper: 5,000)
    seeds: int = 3  # teachers (v*, b*), trained together (SPEC: ≥ 3)
    dim: int = 100  # input dimension (paper: 100)
    hidden: int = 100  # width of the MLPs' three hidden layers (paper: 100)
    batch: int = 256  # fresh samples per step (paper: 256)
    smooth_lr: float = 0.01  # Adam step of smooth_approx (paper: 0.01)
    mlp_lr: float = 1e-3  # Adam step of end_to_end and multiclass (paper: 1e-3)
    forward_only_lr: float = 1e-3  # Adam step of forward_only (paper: 1e-3)
    smooth_temperature: float = 0.005  # τ of the sigmoid-smoothed staircase (our choice, docstring)
    test_samples: int = 20_000  # test inputs per seed (SPEC reference: 20,000)
    eval_every: int = 500  # steps between test-MSE evaluations for the learning curves
    plot_points: int = 600  # test points per variant kept for the figure

    @classmethod
    def smoke(cls) -> Config:
        return cls(iterations=60, forward_only_iterations=60, seeds=2, hidden=16, batch=64,
                   test_samples=500, eval_every=20, plot_points=100)

    @classmethod
    def paper(cls) -> Config:
        return cls(iterations=10_000, seeds=10)

    def validate(self) -> None:
        require(len(self.variants) > 0 and len(set(self.variants)) == len(self.variants),
                "variants: a non-empty list of distinct " + ", ".join(VARIANTS))
        for k in ("iterations", "forward_only_iterations", "seeds", "dim", "hidden", "batch",
                  "test_samples", "eval_every", "plot_points"):
            require(getattr(self, k) >= 1, f"{k} must be ≥ 1")
        for k in ("smooth_lr", "mlp_lr", "forward_only_lr", "smooth_temperature"):
            require(getattr(self, k) > 0, f"{k} must be > 0")


# ---- models, batched over S seeds ------------------------------------------------------------
def _linear(s: int, fan_in: int, fan_out: int, g: torch.Generator) -> list[torch.Tensor]:
    """Weight (S, fan_in, fan_out), truncated normal std 1/sqrt(fan_in) (the paper's code's
    init), bias (S, 1, fan_out) zero."""
    std = 1.0 / math.sqrt(fan_in)
    w = torch.empty(s, fan_in, fan_out, device=g.device)
    torch.nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=g)
    return [w, torch.zeros(s, 1, fan_out, device=g.device)]


def _mlp(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """ReLU MLP on (S, N, in); params alternate weight (S, in, out), bias (S, 1, out)."""
    h = x
    last = len(params) // 2 - 1
    for i in range(0, len(params), 2):
        h = torch.baddbmm(params[i + 1], h, params[i])
        if i // 2 < last:
            h = torch.relu(h)
    return h


def _init(variant: str, cfg: Config, g: torch.Generator) -> list[torch.Tensor]:
    S, d, h = cfg.seeds, cfg.dim, cfg.hidden
    if variant in ("smooth_approx", "forward_only"):
        return _linear(S, d, 1, g)
    out = len(task.OFFSETS) if variant == "multiclass" else 1
    params = []
    for a, b in zip([d, h, h, h], [h, h, h, out]):
        params += _linear(S, a, b, g)
    return params


def _predict(variant: str, params: list[torch.Tensor], x: torch.Tensor, z: torch.Tensor,
             cfg: Config) -> torch.Tensor:
    """Predicted y (S, N) for inputs x (S, N, d) (no gradient tricks: the test-time output)."""
    if variant == "smooth_approx":
        r = _mlp(params, x)[..., 0]
        return task.smooth_staircase(r, z, cfg.smooth_temperature)
    if variant == "forward_only":
        return task.staircase(_mlp(params, x)[..., 0], z)
    if variant == "multiclass":
        return z.gather(1, _mlp(params, x).argmax(-1))
    return _mlp(params, x)[..., 0]


def _loss(variant: str, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
          k: torch.Tensor, z: torch.Tensor, cfg: Config) -> torch.Tensor:
    """Sum over seeds of each seed's mean loss (so each seed's gradient is its own)."""
    if variant == "multiclass":
        logits = _mlp(params, x)  # (S, N, K)
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), k.flatten(),
                                               reduction="none")
        return ce.view_as(y).mean(1).sum()
    if variant == "forward_only":
        # ½(u(r̂) − y)² with u straight-through: gradient (u(wᵀx + b) − y)·(x, 1), SPEC A8
        out = task.straight_through(_mlp(params, x)[..., 0], z)
        return 0.5 * ((out - y) ** 2).mean(1).sum()
    return ((_predict(variant, params, x, z, cfg) - y) ** 2).mean(1).sum()


def forward_only_update(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                        z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The update direction of SPEC A8 for one seed's batch: (E[(u(wᵀx + b) − y) x],
    E[u(wᵀx + b) − y]); w (d,), b scalar, x (N, d), y (N,), z (K,)."""
    resid = task.staircase((x @ w + b)[None], z[None])[0] - y
    return (resid[:, None] * x).mean(0), resid.mean()


# ---- training --------------------------------------------------------------------------------
def _teachers(cfg: Config, ctx) -> tuple[torch.Tensor, torch.Tensor]:
    vs, bs = zip(*[task.sample_teacher(ctx.generator("teacher", s), cfg.dim)
                   for s in range(cfg.seeds)])
    return torch.stack(vs), torch.stack(bs)


def _draw(n: int, cfg: Config, gens: list[torch.Generator]) -> torch.Tensor:
    return torch.stack([task.sample_inputs(n, cfg.dim, g) for g in gens])  # (S, n, d)


def _train(variant: str, cfg: Config, ctx) -> dict:
    S = cfg.seeds
    v_star, b_star = _teachers(cfg, ctx)
    z = task.step_values(b_star)  # (S, K)
    x_test = _draw(cfg.test_samples, cfg, [ctx.generator("test", s) for s in range(S)])
    r_test = torch.einsum("snd,sd->sn", x_test, v_star) + b_star[:, None]
    y_test = task.staircase(r_test, z)
    iters = cfg.forward_only_iterations if variant == "forward_only" else cfg.iterations
    lr = {"smooth_approx": cfg.smooth_lr, "forward_only": cfg.forward_only_lr}.get(
        variant, cfg.mlp_lr)
    params = [p.requires_grad_() for p in _init(variant, cfg, ctx.generator("init", variant))]
    opt = torch.optim.Adam(params, lr=lr, betas=BETAS, eps=ADAM_EPS)
    gens = [ctx.generator("data", s) for s in range(S)]  # the same stream for every variant
    curve: dict = {"step": [], "mse": []}
    step = 0
    state = ctx.load_checkpoint(variant)
    if state is not None:
        with torch.no_grad():
            for p, q in zip(params, state["params"]):
                p.copy_(q)
        opt.load_state_dict(state["opt"])
        for g, gs in zip(gens, state["gens"]):
            g.set_state(gs)
        curve, step = state["curve"], int(state["step"])

    def test_mse() -> torch.Tensor:
        with torch.no_grad():
            return ((_predict(variant, params, x_test, z, cfg) - y_test) ** 2).mean(1)

    def evaluate(at: int) -> None:
        mse = test_mse().tolist()
        curve["step"].append(at)
        curve["mse"].append(mse)
        ctx.log(variant, at, test_mse=mse)

    if step == 0:
        evaluate(0)
    with ctx.progress(iters - step, f"flat_activation {variant}") as advance:
        while step < iters:
            m = min(CHUNK, iters - step)
            x = _draw(m * cfg.batch, cfg, gens).view(S, m, cfg.batch, cfg.dim)
            r = torch.einsum("smnd,sd->smn", x, v_star) + b_star[:, None, None]
            k = task.staircase_index(r.flatten(1), z).view_as(r)
            y = z.gather(1, k.flatten(1)).view_as(r)
            for j in range(m):
                loss = _loss(variant, params, x[:, j], y[:, j], k[:, j], z, cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step % cfg.eval_every == 0:
                    evaluate(step)
            advance(m)
            if ctx.checkpoint_due() and step < iters:
                ctx.save_checkpoint({"params": [p.detach() for p in params],
                                     "opt": opt.state_dict(), "step": step,
                                     "gens": [g.get_state() for g in gens], "curve": curve},
                                    variant)
    if curve["step"][-1] != iters:
        evaluate(iters)
    with torch.no_grad():
        pred = _predict(variant, params, x_test, z, cfg)
    keep = torch.linspace(0, cfg.test_samples - 1, min(cfg.plot_points, cfg.test_samples))
    keep = keep.round().long()
    return {
        "test_mse": curve["mse"][-1], "curve": curve, "iterations": iters, "lr": lr,
        "plot": {"r": r_test[0, keep].tolist(), "pred": pred[0, keep].tolist()},
    }


def run(cfg: Config, ctx) -> dict:
    _, b_star = _teachers(cfg, ctx)
    res: dict = {"b_star": b_star.tolist(),
                 "small_b_seeds": [s for s, b in enumerate(b_star.tolist()) if abs(b) < SMALL_B]}
    for v in cfg.variants:
        res[v] = ctx.stage(v, lambda v=v: _train(v, cfg, ctx))
    res["mean_test_mse"] = {v: sum(res[v]["test_mse"]) / cfg.seeds for v in cfg.variants}
    z0 = task.step_values(b_star[:1])[0]
    res["staircase"] = {"z": z0.tolist(), "b_star": b_star[0].item()}
    return res


def claims(res: dict, cfg: Config) -> list[Claim]:
    mean = res.get("mean_test_mse", {})
    per_seed = {v: res[v]["test_mse"] for v in VARIANTS if v in res}
    flags = {"seeds_with_small_b_star": res.get("small_b_seeds", []),
             "b_star": res.get("b_star", [])}
    out = []
    have = all(v in mean for v in VARIANTS)
    fo = mean.get("forward_only", math.nan)
    ok = have and finite(*mean.values()) and all(fo < mean[v] for v in VARIANTS
                                                  if v != "forward_only")
    out.append(Claim(
        "forward_only_best",
        "the forward-only update (exact u forward, identity backward) fits the staircase best",
        f"mean test MSE over {cfg.seeds} seeds of forward_only lower than each other variant's",
        {"mean_test_mse": mean, "per_seed_test_mse": per_seed, **flags}, bool(ok),
        "smooth 1.55, end_to_end 1.4e-3, multiclass 1.1e-3, forward_only 3.8e-4 (seeds 0–2)"))
    sm = mean.get("smooth_approx", math.nan)
    pair = "smooth_approx" in mean and "forward_only" in mean
    ratio = sm / fo if pair and fo > 0 else math.nan
    out.append(Claim(
        "smooth_approx_fails",
        "gradient descent through a sigmoid-smoothed staircase stalls on its flat regions",
        "mean test MSE of smooth_approx ≥ 10 × forward_only's",
        {"smooth_approx": sm, "forward_only": fo, "ratio": ratio, **flags},
        bool(pair and finite(sm, fo, ratio) and ratio >= 10.0),
        "1.55 vs 3.8e-4 (ratio ≈ 4,000)"))
    return out


_LABELS = {"smooth_approx": "smooth approximation", "end_to_end": "end-to-end regression",
           "multiclass": "multiclass", "forward_only": "forward-only update"}


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    variants = [v for v in VARIANTS if v in res]
    fig, axes = plots.figure(1, len(variants), width=3.6, height=3.2, sharey=True)
    z = torch.tensor(res["staircase"]["z"])
    for ax, v in zip(axes[0], variants):
        r = torch.tensor(res[v]["plot"]["r"])
        pred = torch.tensor(res[v]["plot"]["pred"])
        order = r.argsort()
        grid = torch.linspace(float(r.min()), float(r.max()), 2000)
        true = task.staircase(grid[None], z[None])[0]
        ax.plot(grid, true, color="tab:blue", lw=1.5, label="true u(r)")
        ax.plot(r[order], pred[order], ".", color="tab:red", ms=2.5, label="learned")
        mse = res[v]["test_mse"][0]
        ax.set_title(f"{_LABELS[v]}\ntest MSE {mse:.2g} (seed 0)")
        ax.set_xlabel("r = v*ᵀx + b*")
    axes[0, 0].set_ylabel("output")
    axes[0, 0].legend(loc="upper left")
    fig.suptitle(f"Learning a staircase u(r) (seed 0, b* = {res['staircase']['b_star']:.2f})")
    paths = [plots.save(fig, out_dir / "flat_activation.png")]
    fig, axes = plots.figure(1, 1, width=5.0, height=3.6)
    ax = axes[0, 0]
    for i, v in enumerate(variants):
        mse = torch.tensor(res[v]["curve"]["mse"]).mean(1)
        ax.plot(res[v]["curve"]["step"], mse, color=plots.COLORS[i], label=_LABELS[v])
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"test MSE, mean of {cfg.seeds} seeds (log)")
    ax.set_title("Test MSE vs steps (paper ref.: 1.55 / 1.4e-3 / 1.1e-3 / 3.8e-4)")
    ax.legend()
    paths.append(plots.save(fig, out_dir / "flat_activation_mse.png"))
    return paths


EXPERIMENT = Experiment(
    name="flat_activation",
    spec="A8",
    title="flat activations: smoothed staircase vs end-to-end vs multiclass vs forward-only",
    source="Shalev-Shwartz et al. 2017, extended §5",
    config=Config,
    run=run,
    claims=claims,
    plot=plot,
)
