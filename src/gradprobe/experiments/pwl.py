"""A7 `pwl` — architecture and conditioning: encoding piecewise-linear curves (SPEC A7).

Shalev-Shwartz, Shamir, Shammah 2017, "Failures of Gradient-Based Deep Learning", extended
version §4 and Fig. 5 (ICML version §4): recovering the kinks p of a piecewise-linear curve
f = W p is a linear problem, yet a fully connected linear map barely learns it in 50,000 Adam
iterations (the Hessian λWᵀW has condition number σ₁²/σ_n² ≈ 1.35·n⁴), a 3-tap convolution
(the right architecture: W⁻¹ is the filter (1, −2, 1)) still stalls (cond(C) = Θ(n³) for the
covariance C of the 3-windows), and the same convolution on whitened windows C^{-1/2}x reaches
1% error within a few hundred iterations. A vanilla deep autoencoder does not help either.

Every variant trains through training.fit (the S seeds of a linear decoder as one stacked
parameter with training.ensemble.Adam) and is drawn at Fig. 5's 500, 10,000 and 50,000
iterations (its caption; the autoencoder reaches 10,000 at quick scale, 50,000 at paper scale).

Our quick run (n = 100, 3 seeds, seed 0): conv_cond first reaches error ≤ 1e-2 after 165, 175,
170 iterations (t interval of the mean [158, 182] ≤ 500; reference 145–230); after 50,000
iterations conv's best error is 0.41 on every seed and fc's 0.82–0.83 (reference 0.41–0.42 and
0.83–0.85): conditioning_wins holds. At lr 0.99 conv_cond rebounds after solving the problem
(error 0.79, 1.6e-5, 0.077 at 50,000 iterations).
σ₁²/σ_n² grows as n^3.90 (1.35e8 at n = 100) and cond(C) as n^2.95 (1.52e6 at n = 100 with the
windows the padded conv sees, 1.55e6 over the n − 2 interior windows): condition_numbers_scale,
an exact identity.
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
from gradprobe.claims import Claim, Part, exact, judge, not_applicable, t_interval
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.trunc_mlp import trunc_mlp
from gradprobe.tasks import pwl as task
from gradprobe.theory import conditioning as theory
from gradprobe.training.ensemble import Adam
from gradprobe.training.fit import fit

Variant = Literal["fc", "conv", "conv_cond", "autoencoder"]
LINEAR = ("fc", "conv", "conv_cond")
BETAS = (0.9, 0.999)  # Adam defaults (TensorFlow and torch), the paper's optimiser
ADAM_EPS = 1e-8
EXAMPLES = 2  # validation curves drawn in the Fig. 5 panels
CHUNK = 10  # training steps whose data are drawn at once (small enough to stay in cache)
AE_HIDDEN = (500, 100, 6, 100, 100)  # encoder n→500→100→6, decoder 6→100→100→n (SPEC A7)
AE_CODE_LAYER = 2  # the autoencoder's linear code layer (the 6 units)


@dataclass(frozen=True)
class Config(ExperimentConfig):
    n: int = 100  # curve length (paper §4: 100)
    variants: tuple[Variant, ...] = ("fc", "conv", "conv_cond", "autoencoder")  # SPEC A7
    iterations: int = 50_000  # fc, conv and conv_cond Adam iterations (paper Fig. 5: 50,000)
    cond_iterations: int = 500  # conv_cond must reach target_error by then (paper's command line)
    ae_iterations: int = 10_000  # autoencoder iterations (SPEC A7: 10,000; paper scale 50,000)
    panels: tuple[int, ...] = (500, 10_000, 50_000)  # Fig. 5's iteration counts (its caption)
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
    cond_eval_every: int = 5  # conv_cond's evaluations up to cond_iterations (SPEC A7)
    target_error: float = 1e-2  # error conv_cond must reach (SPEC A7)
    stall_error: float = 0.1  # conv's best error must stay above this (SPEC A7)

    @classmethod
    def smoke(cls) -> Config:
        return cls(n=20, iterations=400, cond_iterations=100, ae_iterations=100, seeds=2,
                   ns=(10, 20, 40), val_curves=100, eval_every=50, panels=(50, 100, 400))

    @classmethod
    def paper(cls) -> Config:
        return cls(seeds=10, ae_seeds=3, ae_iterations=50_000)

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
        require(self.cond_iterations <= self.iterations
                and self.cond_iterations % self.cond_eval_every == 0
                and self.cond_iterations % self.eval_every == 0,
                "cond_iterations must be ≤ iterations and a multiple of cond_eval_every and "
                "of eval_every")
        require(len(self.panels) > 0 and all(t >= 1 and t % self.eval_every == 0
                                             for t in self.panels),
                "panels: iteration counts ≥ 1, each a multiple of eval_every")


@dataclass(frozen=True)
class _Plan:
    """How one variant trains: phases of (last iteration, evaluation interval)."""

    phases: tuple[tuple[int, int], ...]
    batch: int
    lr: float
    dtype: torch.dtype
    snapshots: tuple[int, ...]  # Fig. 5's panels that this variant reaches

    @property
    def iterations(self) -> int:
        return self.phases[-1][0]


def _plan(variant: str, cfg: Config) -> _Plan:
    """Every variant is drawn at cfg.panels (Fig. 5's caption: 500, 10,000, 50,000); conv_cond
    is evaluated every cond_eval_every up to cond_iterations (the claim), then every
    eval_every."""
    def make(total: int, batch: int, lr: float, dtype: torch.dtype,
             phases: tuple[tuple[int, int], ...] | None = None) -> _Plan:
        snaps = tuple(sorted(t for t in set(cfg.panels) if t <= total))
        return _Plan(phases or ((total, cfg.eval_every),), batch, lr, dtype, snaps)

    if variant == "fc":
        return make(cfg.iterations, cfg.batch, cfg.fc_lr, torch.float32)
    if variant == "conv":
        return make(cfg.iterations, cfg.batch, cfg.conv_lr, torch.float64)
    if variant == "conv_cond":
        return make(cfg.iterations, cfg.cond_batch, cfg.cond_lr, torch.float64,
                    ((cfg.cond_iterations, cfg.cond_eval_every),
                     (cfg.iterations, cfg.eval_every)))
    return make(cfg.ae_iterations, cfg.batch, cfg.ae_lr, torch.float32)


def _fit_phases(ctx, name: str, plan: _Plan, step, evaluate, state: dict, description: str
                ) -> tuple[list[dict], bool]:
    """fit() once per phase of the plan (phase j > 0 resumes where j − 1 stopped, under its own
    checkpoint name); returns the evaluation rows (global iteration in "step") and whether a
    phase diverged."""
    rows: list[dict] = []
    start = 0
    for j, (until, every) in enumerate(plan.phases):
        if until <= start:
            continue
        res = fit(ctx, name if j == 0 else f"{name}@{start}", steps=until - start,
                  step=lambda i, k, o=start: step(o + i, k), eval_every=every, chunked=True,
                  evaluate=lambda at, o=start: evaluate(o + at) if at or o == 0 else {},
                  state=state, description=description)
        rows += [{**r, "step": r["step"] + start} for r in res.history if len(r) > 2]
        if res.diverged:
            return rows, True
        start = until
    return rows, False


def _val_set(cfg: Config, ctx, seeds: int, dtype: torch.dtype) -> torch.Tensor:
    """(seeds, val_curves, n) validation targets p, the same for every variant."""
    ps = [task.sample_p(cfg.val_curves, cfg.n, ctx.generator("val", s), dtype=torch.float64)
          for s in range(seeds)]
    return torch.stack(ps).to(dtype)


def _whitener(cfg: Config, device) -> torch.Tensor:
    cov = theory.window_covariance(task.ramp_matrix(cfg.n), task.K_KINKS)
    return theory.inverse_sqrt(cov).to(device)


def _train_linear(variant: str, cfg: Config, ctx) -> dict:
    """Train S seeds of one linear decoder p̂ = M f (fc) or p̂ = filter * f (conv, conv_cond).

    The loss is the mean squared error over the batch and the n positions. For the filters the
    gradient 2(Ĉ_b w − ĉ_b) only needs each batch's 3×3 window moments Ĉ_b = mean x xᵀ and
    ĉ_b = mean x p, computed for a whole chunk of steps by one batched product: the per-step
    loop is then a handful of tiny ops (the same update as the forward/backward pass).
    Adam is training.ensemble.Adam on the stacked (S, ...) parameter: elementwise, so the
    seeds stay independent.
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
    params = {"w": torch.zeros(shape, dtype=plan.dtype, device=dev)}  # paper: fc init 0
    opt = Adam(plan.lr, betas=BETAS, eps=ADAM_EPS)
    gens = [ctx.generator("train", variant, s) for s in range(S)]

    def predict(x: torch.Tensor) -> torch.Tensor:  # (S, B, n[,3]) → p̂ (S, B, n)
        if variant == "fc":
            return torch.bmm(x, params["w"].transpose(1, 2))
        return (x @ params["w"][:, None, :, None]).squeeze(-1)

    def evaluate(at: int) -> dict:
        with torch.no_grad():
            p_hat = predict(x_val).to(torch.float64)
            err = task.relative_error(p_hat, p_val)  # (S,)
            dec = task.relative_error(task.curves(p_hat), f_val)
        row = {"error": err.tolist(), "decoded_error": dec.tolist()}
        if at in plan.snapshots:
            row["snapshot"] = p_hat[0, :EXAMPLES].tolist()
        return row

    def chunk(m: int) -> None:
        """m steps whose (S, m, B, n) fresh curves are drawn at once, one stream per seed."""
        p = torch.stack([task.sample_p(m * plan.batch, n, g, dtype=plan.dtype)
                         for g in gens]).view(S, m, plan.batch, n)
        f = task.curves(p)
        w = params["w"]
        if variant == "fc":
            scale = 2.0 / (plan.batch * n)  # d/dM of the mean squared error
            for j in range(m):
                xj = f[:, j]
                e = torch.baddbmm(p[:, j], xj, w.transpose(1, 2), beta=-1)  # p̂ − p
                opt.update(params, {"w": torch.bmm(e.transpose(1, 2), xj).mul_(scale)})
            return
        mom = task.window_moments(p, f)  # (S, m, 3, 4)
        if whiten is not None:  # moments of the whitened windows C^{-1/2} x
            mom = torch.cat([whiten @ mom[..., :3] @ whiten, whiten @ mom[..., 3:]], dim=-1)
        c_b, c_p = mom[..., :3], mom[..., 3]  # 2·mean x xᵀ, 2·mean x p: (S, m, 3[, 3])
        for j in range(m):
            opt.update(params, {"w": (c_b[:, j] @ w.unsqueeze(-1)).squeeze(-1) - c_p[:, j]})

    def step(i: int, k: int) -> None:  # steps i+1 … i+k, data drawn CHUNK steps at a time
        while k > 0:
            m = min(CHUNK, k)
            chunk(m)
            k -= m

    rows, diverged = _fit_phases(ctx, variant, plan, step, evaluate, description=f"pwl {variant}",
                                 state={"params": params, "opt": opt, "data": gens})
    out = _summarise(rows, cfg, plan)
    out["diverged"] = diverged
    return out


def _summarise(rows: list[dict], cfg: Config, plan: _Plan) -> dict:
    steps = [r["step"] for r in rows]
    err = torch.tensor([r["error"] for r in rows], dtype=torch.float64)  # (evals, S)
    dec = [r["decoded_error"] for r in rows]
    best = torch.cummin(torch.nan_to_num(err, nan=math.inf), dim=0).values
    out = {
        "steps": steps, "error": err.tolist(), "decoded_error": dec,
        "best_error": best[-1].tolist(), "final_error": err[-1].tolist(),
        "final_decoded_error": dec[-1],
        "snapshots": {str(r["step"]): r["snapshot"] for r in rows if "snapshot" in r},
        "iterations": plan.iterations, "lr": plan.lr, "batch": plan.batch,
    }
    hit = []
    for s in range(err.shape[1]):
        idx = (err[:, s] <= cfg.target_error).nonzero()
        hit.append(int(steps[int(idx[0])]) if len(idx) else None)
    out["first_hit"] = hit
    early = [i for i, t in enumerate(steps) if t <= cfg.cond_iterations]
    out["best_error_by_cond_iterations"] = best[early[-1]].tolist()
    return out


def _train_autoencoder(cfg: Config, ctx) -> dict:
    """The vanilla deep autoencoder on f, MSE on the decoded curve, one model per seed."""
    plan, n, dev = _plan("autoencoder", cfg), cfg.n, ctx.device
    runs = []
    for s in range(cfg.ae_seeds):
        p_val = _val_set(cfg, ctx, s + 1, torch.float32)[s].to(dev)
        f_val = task.curves(p_val)
        model = trunc_mlp((n, *AE_HIDDEN, n), ctx.generator("ae_init", s, device="cpu"),
                          linear_layers=(AE_CODE_LAYER,)).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=plan.lr, betas=BETAS, eps=ADAM_EPS)
        g = ctx.generator("train", "autoencoder", s)

        def evaluate(at: int, model=model, f_val=f_val) -> dict:
            with torch.no_grad():
                f_hat = model(f_val)
                row = {"decoded_error": float(task.relative_error(f_hat, f_val))}
            if at in plan.snapshots:
                row["snapshot"] = f_hat[:EXAMPLES].tolist()
            return row

        def step(i: int, k: int, model=model, opt=opt, g=g) -> None:  # k ≤ every steps' data
            f = task.curves(task.sample_p(k * plan.batch, n, g).view(k, plan.batch, n))
            for j in range(k):
                loss = torch.nn.functional.mse_loss(model(f[j]), f[j])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        rows, _ = _fit_phases(ctx, f"autoencoder{s}", plan, step, evaluate,
                              description=f"pwl autoencoder seed {s}",
                              state={"model": model, "opt": opt, "data": g})
        runs.append(rows)
    rows = runs[0]
    return {
        "steps": [r["step"] for r in rows],
        "decoded_error": [[h[i]["decoded_error"] for h in runs] for i in range(len(rows))],
        "final_decoded_error": [h[-1]["decoded_error"] for h in runs],
        "snapshots": {str(r["step"]): r["snapshot"] for r in rows if "snapshot" in r},
        "iterations": plan.iterations, "lr": plan.lr, "batch": plan.batch,
    }


def _cond_c(n: int, padded: bool = True) -> float:
    return theory.condition_number(
        theory.window_covariance(task.ramp_matrix(n), task.K_KINKS, padded=padded))


def _condition_study(cfg: Config) -> dict:
    ns = list(cfg.ns)
    ratio = [theory.squared_condition(task.ramp_matrix(m)) for m in ns]
    cond_c = [_cond_c(m) for m in ns]
    cond_valid = [_cond_c(m, padded=False) for m in ns]
    cov = theory.window_covariance(task.ramp_matrix(cfg.n), task.K_KINKS)
    white = theory.inverse_sqrt(cov)
    return {
        "ns": ns, "sigma_ratio": ratio, "cond_C": cond_c, "cond_C_interior": cond_valid,
        "sigma_ratio_exponent": theory.fitted_exponent(ns, ratio),
        "cond_C_exponent": theory.fitted_exponent(ns, cond_c),
        "cond_C_interior_exponent": theory.fitted_exponent(ns, cond_valid),
        "cond_whitened": theory.condition_number(white @ cov @ white),
        "sigma_ratio_over_n4": [r / m ** 4 for r, m in zip(ratio, ns)],
    }


def _theory_curves(cfg: Config, results: dict) -> dict:
    """Lemma 2's expected-iterate error (GD/SGD at step 1/L) beside each measured curve, and
    Theorem 3's iteration bound for reaching target_error."""
    w, k = task.ramp_matrix(cfg.n), task.K_KINKS
    out: dict = {}
    for v in LINEAR:
        if v not in results:
            continue
        steps = results[v]["steps"]
        if v == "fc":
            curve = theory.fc_expected_error(w, steps, k)
        else:
            curve = theory.conv_expected_error(w, steps, k, whiten=v == "conv_cond")
        out[v] = {"steps": steps, "expected_error": curve}
    out["theorem3_iterations"] = {
        "fc": theory.theorem3_iterations(theory.squared_condition(w), cfg.target_error),
        "conv": theory.theorem3_iterations(_cond_c(cfg.n), cfg.target_error),
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


def _log10(values: list[float | None]) -> list[float]:
    return [math.log10(v) if v is not None and v > 0 else math.nan for v in values]


def claims(res: dict, cfg: Config) -> list[Claim]:
    return [_conditioning_wins(res, cfg), _condition_numbers_scale(res)]


def _conditioning_wins(res: dict, cfg: Config) -> Claim:
    """Three parts, Student t across the seeds: conv_cond's first iteration with error
    ≤ target_error is ≤ cond_iterations (SPEC A7's statement; a seed that never gets there
    counts as one evaluation past the last iteration run, a lower bound); log10 of conv's best
    error after `iterations` ≥ log10(stall_error); log10(fc best / conv best) ≥ 0."""
    statement = ("the whitened conv reaches 1% error within a few hundred iterations; conv and "
                 f"fc do not get below {cfg.stall_error:g} in {cfg.iterations} iterations, fc "
                 "worst")
    expected = (f"over {cfg.seeds} seeds (Student t): the first iteration at which conv_cond's "
                f"error ≤ {cfg.target_error:g} (evaluated every {cfg.cond_eval_every}) is "
                f"≤ {cfg.cond_iterations}; at {cfg.iterations} iterations log10 of conv's "
                f"best-so-far ≥ log10 {cfg.stall_error:g} and log10(fc best / conv best) ≥ 0")
    paper = "conv_cond 1e-2 in 145–230 its; conv 0.41–0.42 and fc 0.83–0.85 after 50k"
    missing = [v for v in LINEAR if v not in res]
    if missing:
        return not_applicable("conditioning_wins", statement,
                              "needs variants " + ", ".join(missing), paper, "empirical")
    cc = res["conv_cond"]
    never = cc["iterations"] + cfg.cond_eval_every  # lower bound for a seed that never hit
    hits = [float(h) if h is not None else float(never) for h in cc["first_hit"]]
    conv_best, fc_best = res["conv"]["best_error"], res["fc"]["best_error"]
    lc, lf = _log10(conv_best), _log10(fc_best)
    parts = [
        Part(f"conv_cond first iteration with error ≤ {cfg.target_error:g}", t_interval(hits),
             "<=", float(cfg.cond_iterations)),
        Part(f"log10 conv best error at {cfg.iterations}", t_interval(lc), ">=",
             math.log10(cfg.stall_error)),
        Part("log10(fc best / conv best)", t_interval([f - c for f, c in zip(lf, lc)]), ">=",
             0.0),
    ]
    measured = {"conv_cond_first_hit": cc["first_hit"],
                "conv_cond_best_by_cond_iterations": cc["best_error_by_cond_iterations"],
                "conv_cond_final_error": cc["final_error"],
                "conv_best": conv_best, "fc_best": fc_best,
                "diverged": [v for v in LINEAR if res[v].get("diverged")]}
    return judge("conditioning_wins", statement, expected, paper, "empirical", parts, measured)


def _condition_numbers_scale(res: dict) -> Claim:
    """Deterministic (float64 SVD / eigenvalues of exact matrices): kind identity, exact."""
    c = res["conditioning"]
    e_w, e_c = c["sigma_ratio_exponent"], c["cond_C_exponent"]
    parts = [Part("exponent of σ₁²/σ_n²", exact(e_w), "in", (3.5, 4.5)),
             Part("exponent of cond(C)", exact(e_c), "in", (2.5, 3.5))]
    return judge(
        "condition_numbers_scale",
        "σ₁(W)²/σ_n(W)² grows like n⁴ and cond(C) of the 3-windows like n³",
        "fitted exponent of σ₁²/σ_n² in [3.5, 4.5] and of cond(C) in [2.5, 3.5] over n ∈ "
        + ", ".join(str(m) for m in c["ns"]) + " (exact matrices: no interval)",
        "exponents 3.90 and 2.89; 1.35e8 and 1.55e6 at n = 100", "identity", parts,
        {"sigma_ratio_exponent": e_w, "cond_C_exponent": e_c,
         **{f"sigma_ratio[{m}]": r for m, r in zip(c["ns"], c["sigma_ratio"])},
         **{f"cond_C[{m}]": r for m, r in zip(c["ns"], c["cond_C"])}})


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
    fig, axes = plots.figure(len(variants), len(cfg.panels), width=3.4, height=2.4)
    for r, v in enumerate(variants):
        snaps = res[v]["snapshots"]
        for c, at in enumerate(cfg.panels):
            ax = axes[r, c]
            if str(at) not in snaps:
                ax.text(0.5, 0.5, f"{_TITLES[v]}:\nnot trained to {at:,} its\nat this scale",
                        ha="center", va="center", fontsize=8, transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            est = torch.tensor(snaps[str(at)], dtype=torch.float64)
            decoded = est if v == "autoencoder" else task.curves(est)
            for i in range(f_true.shape[0]):
                ax.plot(f_true[i], color="tab:blue", lw=1.2, label="original" if i == 0 else None)
                ax.plot(decoded[i], color="tab:red", lw=1.0, ls="--",
                        label="decoded" if i == 0 else None)
            ax.set_title(f"{_TITLES[v]}: {at:,} its", fontsize=8.5)
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
