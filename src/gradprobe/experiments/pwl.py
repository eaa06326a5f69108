"""A7 `pwl` — architecture and conditioning: encoding piecewise-linear curves (SPEC A7).

Shalev-Shwartz, Shamir, Shammah 2017, "Failures of Gradient-Based Deep Learning", extended
version §4 and Fig. 5 (ICML version §4): recovering the kinks p of a piecewise-linear curve
f = W p is a linear problem, yet a fully connected linear map barely learns it in 50,000 Adam
iterations (the Hessian λWᵀW has condition number σ₁²/σ_n² ≈ 1.35·n⁴), a 3-tap convolution
(the right architecture: W⁻¹ is the filter (1, −2, 1)) still stalls (cond(C) = Θ(n³) for the
covariance C of the 3-windows), and the same convolution on whitened windows C^{-1/2}x reaches
1% error within a few hundred iterations. A vanilla deep autoencoder does not help either.

Our quick run (n = 100, 3 seeds trained together, the paper's iteration counts; ~75 CPU-s on
a loaded 2-core machine): conv_cond first reaches error ≤ 1e-2 after 170–240 iterations
(reference 145–230); after 50,000 iterations conv's best error is 0.41–0.42 and fc's 0.82–0.83
(reference 0.41–0.42 and 0.83–0.85);
σ₁²/σ_n² grows as n^3.90 (1.35e8 at n = 100) and cond(C) as n^2.9 (1.52e6 at n = 100 with the
windows the padded conv sees, 1.55e6 over the n − 2 interior windows).
Error metric: the mean over 1,000 validation curves of ‖p̂ − p‖/‖p‖ (the decoded curve's error
‖Wp̂ − f‖/‖f‖ is also recorded: it hides fc's failure).
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
from gradprobe.nets.init import trunc_normal_fan_in_
from gradprobe.tasks import pwl as task
from gradprobe.theory import conditioning as theory

Variant = Literal["fc", "conv", "conv_cond", "autoencoder"]
LINEAR = ("fc", "conv", "conv_cond")
BETAS = (0.9, 0.999)  # Adam defaults (TensorFlow and torch), the paper's optimiser
ADAM_EPS = 1e-8
EXAMPLES = 2  # validation curves drawn in the Fig. 5 panels
CHUNK = 10  # training steps whose data are drawn at once (small enough to stay in cache)


@dataclass(frozen=True)
class Config(ExperimentConfig):
    n: int = 100  # curve length (paper §4: 100)
    variants: tuple[Variant, ...] = ("fc", "conv", "conv_cond", "autoencoder")  # SPEC A7
    iterations: int = 50_000  # fc and conv Adam iterations (paper Fig. 5: 50,000)
    cond_iterations: int = 500  # conv_cond iterations (paper's command line: 500)
    ae_iterations: int = 10_000  # autoencoder iterations (SPEC A7: 10,000)
    seeds: int = 3  # independent seeds of fc/conv/conv_cond, trained together
    ae_seeds: int = 1  # autoencoder seeds (figure only, no claim)
    ns: tuple[int, ...] = (10, 25, 50, 100, 200)  # sizes of the condition-number study (SPEC)
    batch: int = 100  # curves per step for fc, conv and the autoencoder (paper: 100)
    cond_batch: int = 10  # curves per step for conv_cond (paper's command line: 10)
    fc_lr: float = 1e-4  # Adam step of fc (paper: 1e-4)
    conv_lr: float = 0.05  # Adam step of conv (paper: 0.05)
    cond_lr: float = 0.99  # Adam step of conv_cond (paper's command line: 0.99)
    ae_lr: float = 1e-3  # Adam step of the autoencoder (paper: 1e-3)
    val_curves: int = 1000  # validation curves per seed (SPEC A7)
    eval_every: int = 100  # iterations between evaluations of fc, conv, autoencoder
    cond_eval_every: int = 5  # iterations between evaluations of conv_cond (SPEC A7)
    target_error: float = 1e-2  # error conv_cond must reach (SPEC A7)
    stall_error: float = 0.1  # conv's best error must stay above this (SPEC A7)

    @classmethod
    def smoke(cls) -> Config:
        return cls(n=20, iterations=400, cond_iterations=100, ae_iterations=100, seeds=2,
                   ns=(10, 20, 40), val_curves=100, eval_every=50)

    @classmethod
    def paper(cls) -> Config:
        return cls(seeds=10, ae_seeds=3)

    def validate(self) -> None:
        require(self.n >= 4, "n must be ≥ 4 (curve length)")
        require(len(self.variants) > 0 and len(set(self.variants)) == len(self.variants),
                "variants: a non-empty list of distinct fc, conv, conv_cond, autoencoder")
        for k in ("iterations", "cond_iterations", "ae_iterations", "seeds", "ae_seeds",
                  "batch", "cond_batch", "val_curves", "eval_every", "cond_eval_every"):
            require(getattr(self, k) >= 1, f"{k} must be ≥ 1")
        require(len(self.ns) >= 2 and all(m >= 4 for m in self.ns),
                "ns: at least two sizes, each ≥ 4")
        require(len(set(self.ns)) == len(self.ns), "ns must be distinct")
        for k in ("fc_lr", "conv_lr", "cond_lr", "ae_lr", "target_error", "stall_error"):
            require(getattr(self, k) > 0, f"{k} must be > 0")


@dataclass(frozen=True)
class _Plan:
    """How one linear variant trains."""

    iterations: int
    batch: int
    lr: float
    every: int
    dtype: torch.dtype
    snapshots: tuple[int, ...]


def _snapshots(total: int, fractions: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(sorted({max(1, round(total * f)) for f in fractions}))


def _plan(variant: str, cfg: Config) -> _Plan:
    if variant == "fc":
        return _Plan(cfg.iterations, cfg.batch, cfg.fc_lr, cfg.eval_every, torch.float32,
                     _snapshots(cfg.iterations, (0.01, 0.2, 1.0)))  # paper: 500, 10k, 50k
    if variant == "conv":
        return _Plan(cfg.iterations, cfg.batch, cfg.conv_lr, cfg.eval_every, torch.float64,
                     _snapshots(cfg.iterations, (0.01, 0.2, 1.0)))
    if variant == "conv_cond":
        return _Plan(cfg.cond_iterations, cfg.cond_batch, cfg.cond_lr, cfg.cond_eval_every,
                     torch.float64, _snapshots(cfg.cond_iterations, (0.1, 0.4, 1.0)))
    return _Plan(cfg.ae_iterations, cfg.batch, cfg.ae_lr, cfg.eval_every, torch.float32,
                 _snapshots(cfg.ae_iterations, (0.05, 0.5, 1.0)))


class _Adam:
    """Adam on a list of plain tensors, in place (lean: Python overhead dominates tiny steps)."""

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        b1, b2 = BETAS
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / bc2).sqrt_().add_(ADAM_EPS)
            p.addcdiv_(m, denom, value=-self.lr / bc1)

    def state(self) -> dict:
        return {"t": self.t, "m": self.m, "v": self.v}

    def load(self, state: dict) -> None:
        self.t = int(state["t"])
        for dst, src in zip(self.m + self.v, list(state["m"]) + list(state["v"])):
            dst.copy_(src)


def _val_set(cfg: Config, ctx, seeds: int, dtype: torch.dtype) -> torch.Tensor:
    """(seeds, val_curves, n) validation targets p, the same for every variant."""
    ps = [task.sample_p(cfg.val_curves, cfg.n, ctx.generator("val", s), dtype=torch.float64)
          for s in range(seeds)]
    return torch.stack(ps).to(dtype)


def _whitener(cfg: Config, device) -> torch.Tensor:
    return theory.inverse_sqrt(theory.window_covariance(cfg.n)).to(device)


def window_moments(p: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2·mean over a batch's windows of x [xᵀ, p_i]: (..., B, n) → (..., 3, 4).

    For the 3-tap filter w the gradient of the batch's mean squared error is
    mom[..., :3] @ w − mom[..., 3]. Rows (f_{i−2}, f_{i−1}, f_i, p_i) are laid out contiguously
    so that one batched product gives every step's moments.
    """
    lead, (b, n) = p.shape[:-2], p.shape[-2:]
    fp = torch.nn.functional.pad(f, (2, 0))
    rows = torch.stack([fp[..., :n], fp[..., 1:n + 1], fp[..., 2:], p], dim=-3)  # (..., 4, B, n)
    rows = rows.reshape(-1, 4, b * n)
    mom = (rows @ rows.transpose(1, 2)).mul_(2.0 / (b * n))
    return mom[:, :3].reshape(*lead, 3, 4)


def _train_linear(variant: str, cfg: Config, ctx) -> dict:
    """Train S seeds of one linear decoder p̂ = M f (fc) or p̂ = filter * f (conv, conv_cond).

    The loss is the mean squared error over the batch and the n positions. For the filters the
    gradient 2(Ĉ_b w − ĉ_b) only needs each batch's 3×3 window moments Ĉ_b = mean x xᵀ and
    ĉ_b = mean x p, computed for a whole chunk of steps by one batched product: the per-step
    loop is then a handful of tiny ops (the same update as the forward/backward pass).
    """
    plan, S, n, dev = _plan(variant, cfg), cfg.seeds, cfg.n, ctx.device
    p_val = _val_set(cfg, ctx, S, torch.float64).to(dev)
    f_val = task.curves(p_val)
    whiten = _whitener(cfg, dev).to(plan.dtype) if variant == "conv_cond" else None

    def inputs(f: torch.Tensor) -> torch.Tensor:  # (..., B, n) → model input
        if variant == "fc":
            return f
        x = task.windows(f)  # (..., B, n, 3)
        return x @ whiten if whiten is not None else x

    x_val = inputs(f_val.to(plan.dtype))
    shape = (S, n, n) if variant == "fc" else (S, 3)
    param = torch.zeros(shape, dtype=plan.dtype, device=dev)  # paper: fc init 0
    opt = _Adam([param], plan.lr)
    gens = [ctx.generator("train", variant, s) for s in range(S)]
    hist: dict = {"step": [], "error": [], "decoded_error": []}
    snaps: dict = {}
    step = 0
    state = ctx.load_checkpoint(variant)
    if state is not None:
        param.copy_(state["param"])
        opt.load(state["opt"])
        for g, gs in zip(gens, state["gens"]):
            g.set_state(gs)
        hist, snaps, step = state["hist"], state["snaps"], int(state["step"])

    def predict(x: torch.Tensor) -> torch.Tensor:  # (S, B, n[,3]) → p̂ (S, B, n)
        if variant == "fc":
            return torch.bmm(x, param.transpose(1, 2))
        return (x @ param[:, None, :, None]).squeeze(-1)

    def evaluate(at: int) -> None:
        with torch.no_grad():
            p_hat = predict(x_val).to(torch.float64)
            err = task.relative_error(p_hat, p_val)  # (S,)
            dec = task.relative_error(task.curves(p_hat), f_val)
        hist["step"].append(at)
        hist["error"].append(err.tolist())
        hist["decoded_error"].append(dec.tolist())
        ctx.log(variant, at, error=err.tolist(), decoded_error=dec.tolist())
        if at in plan.snapshots:
            snaps[str(at)] = p_hat[0, :EXAMPLES].tolist()

    if step == 0:
        evaluate(0)
    with ctx.progress(plan.iterations - step, f"pwl {variant}") as advance:
        while step < plan.iterations:
            m = min(CHUNK, plan.iterations - step)
            # (S, m, B, n) fresh curves for the next m steps, one stream per seed
            p = torch.stack([task.sample_p(m * plan.batch, n, g, dtype=plan.dtype)
                             for g in gens]).view(S, m, plan.batch, n)
            f = task.curves(p)
            if variant == "fc":
                x = f
                scale = 2.0 / (plan.batch * n)  # d/dM of the mean squared error
                for j in range(m):
                    xj = x[:, j]
                    e = torch.baddbmm(p[:, j], xj, param.transpose(1, 2), beta=-1)  # p̂ − p
                    opt.step([torch.bmm(e.transpose(1, 2), xj).mul_(scale)])
                    step += 1
                    if step % plan.every == 0 or step in plan.snapshots:
                        evaluate(step)
            else:
                mom = window_moments(p, f)  # (S, m, 3, 4)
                if whiten is not None:  # moments of the whitened windows C^{-1/2} x
                    mom = torch.cat([whiten @ mom[..., :3] @ whiten,
                                     whiten @ mom[..., 3:]], dim=-1)
                c_b, c_p = mom[..., :3], mom[..., 3]  # 2·mean x xᵀ, 2·mean x p: (S, m, 3[, 3])
                for j in range(m):
                    grad = (c_b[:, j] @ param.unsqueeze(-1)).squeeze(-1) - c_p[:, j]
                    opt.step([grad])
                    step += 1
                    if step % plan.every == 0 or step in plan.snapshots:
                        evaluate(step)
            advance(m)
            if ctx.checkpoint_due() and step < plan.iterations:
                ctx.save_checkpoint({"param": param, "opt": opt.state(), "step": step,
                                     "gens": [g.get_state() for g in gens], "hist": hist,
                                     "snaps": snaps}, variant)
    out = _summarise(variant, hist, snaps, cfg, plan)
    out["diverged"] = not finite(*[v for row in hist["error"] for v in row])
    return out


def _summarise(variant: str, hist: dict, snaps: dict, cfg: Config, plan: _Plan) -> dict:
    err = torch.tensor(hist["error"], dtype=torch.float64)  # (evals, S)
    best = torch.cummin(torch.nan_to_num(err, nan=math.inf), dim=0).values
    out = {
        "steps": hist["step"], "error": hist["error"], "decoded_error": hist["decoded_error"],
        "best_error": best[-1].tolist(), "final_error": err[-1].tolist(),
        "final_decoded_error": hist["decoded_error"][-1], "snapshots": snaps,
        "iterations": plan.iterations, "lr": plan.lr, "batch": plan.batch,
    }
    hit = []
    for s in range(err.shape[1]):
        idx = (err[:, s] <= cfg.target_error).nonzero()
        hit.append(int(hist["step"][int(idx[0])]) if len(idx) else None)
    out["first_hit"] = hit
    return out


def _build_autoencoder(n: int, g: torch.Generator) -> torch.nn.Sequential:
    """Encoder n→500→100→6, decoder 6→100→100→n, ReLU (SPEC A7), truncated-normal fan-in init."""
    sizes = [n, 500, 100, 6, 100, 100, n]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(a, b)
        trunc_normal_fan_in_(lin.weight, g)
        torch.nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i not in (2, len(sizes) - 2):  # linear code layer and linear output
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _train_autoencoder(cfg: Config, ctx) -> dict:
    """The vanilla deep autoencoder on f, MSE on the decoded curve, one model per seed."""
    plan, n, dev = _plan("autoencoder", cfg), cfg.n, ctx.device
    runs = []
    for s in range(cfg.ae_seeds):
        p_val = _val_set(cfg, ctx, s + 1, torch.float32)[s].to(dev)
        f_val = task.curves(p_val)
        model = _build_autoencoder(n, ctx.generator("ae_init", s, device="cpu")).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=plan.lr, betas=BETAS, eps=ADAM_EPS)
        g = ctx.generator("train", "autoencoder", s)
        hist: dict = {"step": [], "decoded_error": []}
        snaps: dict = {}
        step = 0
        state = ctx.load_checkpoint(f"autoencoder{s}")
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            g.set_state(state["gen"])
            hist, snaps, step = state["hist"], state["snaps"], int(state["step"])

        def evaluate(at: int, model=model, f_val=f_val, hist=hist, snaps=snaps, s=s) -> None:
            with torch.no_grad():
                f_hat = model(f_val)
                dec = float(task.relative_error(f_hat, f_val))
            hist["step"].append(at)
            hist["decoded_error"].append(dec)
            ctx.log("autoencoder", at, seed=s, decoded_error=dec)
            if at in plan.snapshots:
                snaps[str(at)] = f_hat[:EXAMPLES].tolist()

        if step == 0:
            evaluate(0)
        with ctx.progress(plan.iterations - step, f"pwl autoencoder seed {s}") as advance:
            while step < plan.iterations:
                m = min(plan.every, plan.iterations - step)
                p = task.sample_p(m * plan.batch, n, g).view(m, plan.batch, n)
                f = task.curves(p)
                for j in range(m):
                    loss = torch.nn.functional.mse_loss(model(f[j]), f[j])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step += 1
                    if step % plan.every == 0 or step in plan.snapshots:
                        evaluate(step)
                advance(m)
                if ctx.checkpoint_due() and step < plan.iterations:
                    ctx.save_checkpoint({"model": model.state_dict(), "opt": opt.state_dict(),
                                         "gen": g.get_state(), "step": step, "hist": hist,
                                         "snaps": snaps}, f"autoencoder{s}")
        runs.append({"steps": hist["step"], "decoded_error": hist["decoded_error"],
                     "snapshots": snaps})
    return {
        "steps": runs[0]["steps"],
        "decoded_error": [[r["decoded_error"][i] for r in runs]
                          for i in range(len(runs[0]["steps"]))],
        "final_decoded_error": [r["decoded_error"][-1] for r in runs],
        "snapshots": runs[0]["snapshots"], "iterations": plan.iterations, "lr": plan.lr,
        "batch": plan.batch,
    }


def _condition_study(cfg: Config) -> dict:
    ns = list(cfg.ns)
    ratio = [theory.ramp_condition(m) for m in ns]
    cond_c = [theory.condition_number(theory.window_covariance(m)) for m in ns]
    cond_valid = [theory.condition_number(theory.window_covariance(m, padded=False)) for m in ns]
    white = theory.inverse_sqrt(theory.window_covariance(cfg.n))
    whitened = white @ theory.window_covariance(cfg.n) @ white
    return {
        "ns": ns, "sigma_ratio": ratio, "cond_C": cond_c, "cond_C_interior": cond_valid,
        "sigma_ratio_exponent": theory.fitted_exponent(ns, ratio),
        "cond_C_exponent": theory.fitted_exponent(ns, cond_c),
        "cond_C_interior_exponent": theory.fitted_exponent(ns, cond_valid),
        "cond_whitened": theory.condition_number(whitened),
        "sigma_ratio_over_n4": [r / m ** 4 for r, m in zip(ratio, ns)],
    }


def _theory_curves(cfg: Config, results: dict) -> dict:
    """Lemma 2's expected-iterate error (GD/SGD at step 1/L) beside each measured curve, and
    Theorem 3's iteration bound for reaching target_error."""
    out: dict = {}
    for v in LINEAR:
        if v not in results:
            continue
        steps = results[v]["steps"]
        if v == "fc":
            curve = theory.fc_expected_error(cfg.n, steps)
        else:
            curve = theory.conv_expected_error(cfg.n, steps, whiten=v == "conv_cond")
        out[v] = {"steps": steps, "expected_error": curve}
    out["theorem3_iterations"] = {
        "fc": theory.theorem3_iterations(theory.ramp_condition(cfg.n), cfg.target_error),
        "conv": theory.theorem3_iterations(
            theory.condition_number(theory.window_covariance(cfg.n)), cfg.target_error),
        "conv_cond": theory.theorem3_iterations(1.0, cfg.target_error),
    }
    return out


def run(cfg: Config, ctx) -> dict:
    res: dict = {"conditioning": ctx.stage("conditioning", lambda: _condition_study(cfg))}
    for v in cfg.variants:
        if v == "autoencoder":
            res[v] = ctx.stage(v, lambda: _train_autoencoder(cfg, ctx))
        else:
            res[v] = ctx.stage(v, lambda v=v: _train_linear(v, cfg, ctx))
    res["theory"] = _theory_curves(cfg, res)
    # the curves drawn in the Fig. 5 panels: seed 0's first validation curves
    p_ex = _val_set(cfg, ctx, 1, torch.float64)[0, :EXAMPLES]
    res["examples"] = {"p": p_ex.tolist(),
                       "f": task.curves(p_ex).tolist()}
    return res


def claims(res: dict, cfg: Config) -> list[Claim]:
    out = []
    have = all(v in res for v in LINEAR)
    if have:
        hits = res["conv_cond"]["first_hit"]
        conv_best, fc_best = res["conv"]["best_error"], res["fc"]["best_error"]
        measured = {"conv_cond_first_hit": hits, "conv_best": conv_best, "fc_best": fc_best}
        diverged = [v for v in LINEAR if res[v].get("diverged")]
        measured["diverged"] = diverged
        ok = (not diverged and all(h is not None and h <= cfg.cond_iterations for h in hits)
              and finite(*conv_best, *fc_best)
              and all(c >= cfg.stall_error for c in conv_best)
              and all(f >= c for f, c in zip(fc_best, conv_best)))
    else:
        measured, ok = {"missing": [v for v in LINEAR if v not in res]}, False
    out.append(Claim(
        "conditioning_wins",
        "the whitened conv reaches 1% error within a few hundred iterations; conv and fc do not "
        f"get below {cfg.stall_error:g} in {cfg.iterations} iterations, fc worst",
        f"conv_cond first error ≤ {cfg.target_error:g} by iteration {cfg.cond_iterations} "
        f"(every seed, evaluated every {cfg.cond_eval_every}); at {cfg.iterations} iterations "
        f"conv best-so-far ≥ {cfg.stall_error:g} and fc best-so-far ≥ conv's (every seed)",
        measured, bool(ok),
        "conv_cond 1e-2 in 145–230 its; conv 0.41–0.42 and fc 0.83–0.85 after 50k"))
    c = res["conditioning"]
    e_w, e_c = c["sigma_ratio_exponent"], c["cond_C_exponent"]
    out.append(Claim(
        "condition_numbers_scale",
        "σ₁(W)²/σ_n(W)² grows like n⁴ and cond(C) of the 3-windows like n³",
        "fitted exponent of σ₁²/σ_n² in [3.5, 4.5] and of cond(C) in [2.5, 3.5] over n ∈ "
        + ", ".join(str(m) for m in c["ns"]),
        {"sigma_ratio_exponent": e_w, "cond_C_exponent": e_c,
         **{f"sigma_ratio[{m}]": r for m, r in zip(c["ns"], c["sigma_ratio"])},
         **{f"cond_C[{m}]": r for m, r in zip(c["ns"], c["cond_C"])}},
        bool(finite(e_w, e_c) and 3.5 <= e_w <= 4.5 and 2.5 <= e_c <= 3.5),
        "exponents 3.90 and 2.89; 1.35e8 and 1.55e6 at n = 100"))
    return out


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    paths = [_plot_panels(res, cfg, out_dir), _plot_errors(res, cfg, out_dir),
             _plot_conditioning(res, out_dir)]
    return paths


_TITLES = {"fc": "(a) linear fc", "conv": "(b) convolution", "conv_cond": "(c) conv + whitening",
           "autoencoder": "(d) deep autoencoder"}


def _plot_panels(res: dict, cfg: Config, out_dir: Path) -> Path:
    """Paper Fig. 5: decoded curves (red) against the originals (blue) at three iteration counts."""
    variants = [v for v in ("fc", "conv", "conv_cond", "autoencoder") if v in res]
    f_true = torch.tensor(res["examples"]["f"], dtype=torch.float64)
    fig, axes = plots.figure(len(variants), 3, width=3.4, height=2.4)
    for r, v in enumerate(variants):
        snaps = res[v]["snapshots"]
        keys = sorted(snaps, key=int)[-3:]
        for c in range(3):
            ax = axes[r, c]
            if c >= len(keys):
                ax.axis("off")
                continue
            est = torch.tensor(snaps[keys[c]], dtype=torch.float64)
            decoded = est if v == "autoencoder" else task.curves(est)
            for i in range(f_true.shape[0]):
                ax.plot(f_true[i], color="tab:blue", lw=1.2, label="original" if i == 0 else None)
                ax.plot(decoded[i], color="tab:red", lw=1.0, ls="--",
                        label="decoded" if i == 0 else None)
            ax.set_title(f"{_TITLES[v]}: {int(keys[c]):,} its", fontsize=8.5)
            ax.set_xlabel("position i")
            ax.set_ylabel("f(i)")
            if r == 0 and c == 0:
                ax.legend()
    fig.suptitle("Decoded PWL curves vs the truth (paper Fig. 5); seed 0")
    return plots.save(fig, out_dir / "pwl_curves.png")


def _plot_errors(res: dict, cfg: Config, out_dir: Path) -> Path:
    fig, axes = plots.figure(1, 3, width=4.6, height=3.8)
    ax, ax2, ax3 = axes[0]
    floor = 1e-5
    for v in ("conv_cond", "conv", "fc"):
        if v not in res:
            continue
        color = plots.COLORS[("fc", "conv", "conv_cond").index(v)]
        steps = torch.tensor(res[v]["steps"]).clamp_min(1)
        err = torch.tensor(res[v]["error"], dtype=torch.float64).clamp_min(floor)
        best = torch.cummin(torch.nan_to_num(err, nan=math.inf), dim=0).values
        ax.plot(steps, err[:, 0], color=color, lw=0.6, alpha=0.35)
        for s in range(err.shape[1]):
            ax.plot(steps, best[:, s], color=color, lw=1.4,
                    label=f"{v}: Adam, best so far ({err.shape[1]} seeds)" if s == 0 else None)
        th = res["theory"].get(v)
        if th is not None:
            ax.plot(torch.tensor(th["steps"]).clamp_min(1),
                    torch.tensor(th["expected_error"]).clamp_min(floor), color=color, ls=":",
                    lw=1.8, label=f"{v}: Lemma 2, GD at η = 1/L")
    ax.axhline(cfg.target_error, color="k", lw=0.8, ls="--", label=f"target {cfg.target_error:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, 30)
    ax.set_xlabel("iteration (log)")
    ax.set_ylabel("‖p̂ − p‖ / ‖p‖ on 1,000 validation curves (log)")
    ax.set_title("Error vs iterations (faint: seed 0 raw)\n"
                 "paper at 50k: fc 0.83–0.85, conv 0.41–0.42", fontsize=8)
    ax.legend(fontsize=6.5, loc="lower left")
    for i, v in enumerate(("fc", "conv", "conv_cond", "autoencoder")):
        if v not in res:
            continue
        steps = torch.tensor(res[v]["steps"]).clamp_min(1)
        dec = torch.tensor(res[v]["decoded_error"], dtype=torch.float64).clamp_min(floor)
        ax2.plot(steps, dec[:, 0], color=plots.COLORS[i], lw=0.9, label=v)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_ylim(floor / 2, 30)
    ax2.set_xlabel("iteration (log)")
    ax2.set_ylabel("‖Wp̂ − f‖ / ‖f‖ (decoded curve, log)")
    ax2.set_title("Decoded-curve error, seed 0\n(fc looks better than conv here)", fontsize=8)
    ax2.legend(fontsize=7)
    bound = res["theory"]["theorem3_iterations"]
    names = [v for v in LINEAR if v in res]
    xs = torch.arange(len(names), dtype=torch.float64)
    ax3.bar(xs - 0.2, [bound[v] for v in names], width=0.4, color="0.7",
            label=f"Theorem 3: (κ/2)·ln(1/{cfg.target_error:g})")
    for j, v in enumerate(names):
        hits = [h for h in res[v]["first_hit"] if h is not None]
        if len(hits) == len(res[v]["first_hit"]):
            ax3.bar(float(xs[j]) + 0.2, max(hits), width=0.4, color=plots.COLORS[j],
                    label="measured (Adam), slowest seed" if j == 2 else None)
        else:
            ran = res[v]["iterations"]
            ax3.bar(float(xs[j]) + 0.2, ran, width=0.4, color=plots.COLORS[j], hatch="//",
                    alpha=0.5)
            ax3.annotate(f"> {ran:,}", (float(xs[j]) + 0.2, ran), ha="center", va="bottom",
                         fontsize=7)
    ax3.set_xticks(xs.tolist(), names)
    ax3.set_yscale("log")
    ax3.set_ylabel(f"iterations to error ≤ {cfg.target_error:g} (log)")
    ax3.set_title("Iterations needed: GD lower bound vs Adam\n(hatched: not reached)", fontsize=8)
    ax3.legend(fontsize=7)
    return plots.save(fig, out_dir / "pwl_error.png")


def _plot_conditioning(res: dict, out_dir: Path) -> Path:
    c = res["conditioning"]
    ns = torch.tensor(c["ns"], dtype=torch.float64)
    fig, axes = plots.figure(1, 1, width=5.0, height=3.8)
    ax = axes[0, 0]
    ax.plot(ns, c["sigma_ratio"], "o-",
            label=f"σ₁²/σ_n² of W (slope {c['sigma_ratio_exponent']:.2f})")
    ax.plot(ns, 1.35 * ns ** 4, ":", color=plots.COLORS[0], label="1.35·n⁴ (SPEC)")
    ax.plot(ns, c["cond_C"], "s-", label=f"cond(C), 3-windows (slope {c['cond_C_exponent']:.2f})")
    ax.plot(ns, 1.55e6 * (ns / 100) ** 3, ":", color=plots.COLORS[1], label="1.55e6·(n/100)³")
    ax.axhline(c["cond_whitened"], color=plots.COLORS[2], label="cond after whitening")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (curve length, log)")
    ax.set_ylabel("condition number (log)")
    ax.set_title("Conditioning of the PWL encoding problem")
    ax.legend()
    return plots.save(fig, out_dir / "pwl_conditioning.png")


EXPERIMENT = Experiment(
    name="pwl",
    spec="A7",
    title="architecture & conditioning: fc vs conv vs whitened conv on piecewise-linear curves",
    source="Shalev-Shwartz et al. 2017, extended §4, Fig. 5",
    config=Config,
    run=run,
    claims=claims,
    plot=plot,
)
