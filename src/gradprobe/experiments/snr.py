"""A5 `snr` — signal-to-noise ratio of the gradient against the tuple length k.

Shalev-Shwartz, Shamir & Shammah 2017, "Failures of Gradient-Based Deep Learning", §3.2, Fig. 4.
At initialisation, take the single-tuple gradient ĝ of each loss (end-to-end; decomposition)
with respect to the weights of N1's last layer (the "score" layer, 100 weights + 1 bias).
Signal = ‖E ĝ‖², noise = E‖ĝ − E ĝ‖². The paper finds the end-to-end SNR falling to "below
the precision of 32-bit floats" from k = 3 (visually zero from k = 2) while the decomposition's
stays about constant. Through N2 the end-to-end gradient for image j is multiplied by the other
images' labels, which a random N1 barely predicts, so its signal shrinks geometrically with k.

Per-sample gradients come from `gradprobe.probes.snr` (torch.func); the signal is the unbiased
‖ḡ‖² − tr(Cov)/n with its standard error, so an estimate that is not resolved from zero is
reported as such (and drawn as an upper bound), not as a number. The per-sample gradients are
taken through `ScoreHead` on N1's penultimate features, computed once per sample (exactly the
full net's last-layer gradients; tested), so most of the cost is one N1 forward per image.

Quick (20,000 tuples × 4 initialisations per k, k = 1..5; ~110 CPU-s): SNR_e2e(1) = 3.8e-4
± 1.4e-4 (ln −7.9; the paper's Fig. 4 also starts near ln −7), the same as SNR_dec(1) (at
k = 1 the two gradients are nearly parallel); the decomposition's SNR then stays at 4–8e-4 for
k = 2..5, while the end-to-end signal is not resolved from zero for any initialisation from
k = 2 on (SNR_e2e(3) = −0.9e-5 ± 1.9e-5, its 2-SE upper bound 1.2e-4). Both claims hold on
their point estimates, as SPEC states them, but SNR_e2e(3)'s standard error is ~5× the
threshold 10⁻²·SNR_e2e(1) ≈ 3.8e-6: resolving the collapse itself takes ~10⁶ tuples per
estimate (a GPU run: `--scale paper`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from gradprobe import plots
from gradprobe.claims import finite
from gradprobe.claims import legacy_claim as Claim
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment
from gradprobe.nets.tuple_nets import decomposition_loss, end_to_end_loss, make_tuple_net
from gradprobe.probes.snr import gradient_snr
from gradprobe.tasks.lines import LineParams, draw_lines, sample_params

METHODS = ("e2e", "dec")
LABELS = {"e2e": "end-to-end", "dec": "decomposition"}
SCORE_LAYER = ("n1.score.weight", "n1.score.bias")  # N1's last layer (paper §3.2)
HEAD_PARAMS = ("score.weight", "score.bias")  # the same tensors, named inside ScoreHead


@dataclass(frozen=True)
class Config(ExperimentConfig):
    ks: tuple[int, ...] = (1, 2, 3, 4, 5)  # tuple lengths k (paper Fig. 4: 1..4)
    samples: int = 20000  # tuples per SNR estimate (per-sample gradients)
    inits: int = 4  # independent initialisations per k
    dec_weight: float = 1.0  # weight of the per-image hinge in the decomposition loss
    init: Literal["fan_in", "code"] = "fan_in"  # conv init: SPEC's 1/sqrt(fan_in) or the code's
    chunk_size: int = 100  # tuples per chunk (features and vmapped gradients; bounds memory)

    @classmethod
    def smoke(cls) -> Config:
        return cls(ks=(1, 3), samples=64, inits=2, chunk_size=64)

    @classmethod
    def paper(cls) -> Config:
        return cls(ks=(1, 2, 3, 4, 5, 6), samples=100000, inits=10, chunk_size=2000)

    def validate(self) -> None:
        require(len(self.ks) > 0 and all(1 <= k <= 16 for k in self.ks),
                "ks must be tuple lengths in [1, 16]")
        require(self.samples >= 8, "samples must be ≥ 8")
        require(self.inits >= 1, "inits must be ≥ 1")
        require(self.dec_weight >= 0, "dec_weight must be ≥ 0")
        require(self.chunk_size >= 1, "chunk_size must be ≥ 1")


def _loss(method: str, weight: float):
    if method == "e2e":
        return lambda out, t: end_to_end_loss(out[0], t[0])
    return lambda out, t: decomposition_loss(out[0], out[1], t[0], t[1], weight)


class ScoreHead(nn.Module):
    """N1's last layer followed by N2, on N1's penultimate features: (b, k, 100) → (out, scores).

    The gradient with respect to the score layer depends on the convolutions only through these
    features, so they are computed once (no grad) and shared by both losses; per-sample
    gradients then cost a few small matmuls per tuple.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.score = net.n1.score
        self.n2 = net.n2

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(h).squeeze(-1)  # (b, k)
        return self.n2(scores), scores


def sample_features(net: nn.Module, n: int, k: int, g: torch.Generator,
                    chunk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n fresh k-tuples as N1's penultimate features (n, k, 100), labels (n, k), parity (n,).

    All lines are drawn from `g` at once (so the sample does not depend on `chunk`); images are
    rendered and passed through N1 `chunk` tuples at a time, so they never all sit in memory.
    """
    p = sample_params(n * k, g)
    yi = p.labels.reshape(n, k)
    hs = []
    with torch.no_grad():
        for a in range(0, n * k, chunk * k):
            part = LineParams(*(t[a : a + chunk * k] for t in (p.theta, p.length, p.cx, p.cy)))
            hs.append(net.n1.penultimate(draw_lines(part)))
    return torch.cat(hs).reshape(n, k, -1), yi, yi.prod(dim=1)


def measure(k: int, init: int, cfg: Config, ctx) -> dict:
    """SNR of both losses for one initialisation at tuple length k."""
    net = make_tuple_net(k, ctx.generator("init", k, init, device="cpu"), device=ctx.device,
                         init=cfg.init)
    h, yi, yt = sample_features(net, cfg.samples, k, ctx.generator("data", k, init),
                                cfg.chunk_size)
    head = ScoreHead(net)
    out = {}
    for m in METHODS:
        r = gradient_snr(head, _loss(m, cfg.dec_weight), (h, (yt, yi)), HEAD_PARAMS,
                         chunk_size=cfg.chunk_size)
        out[m] = r.to_dict()
        ctx.log("snr", None, k=k, init=init, method=m, **out[m])
    return out


def run(cfg: Config, ctx) -> dict:
    per_init: dict[str, dict[str, list]] = {m: {} for m in METHODS}
    with ctx.progress(len(cfg.ks) * cfg.inits, "SNR at init") as advance:
        for k in cfg.ks:
            rows = []
            for i in range(cfg.inits):
                rows.append(ctx.stage(f"k{k}_init{i}", lambda k=k, i=i: measure(k, i, cfg, ctx)))
                advance(1)
            for m in METHODS:
                per_init[m][str(k)] = [r[m] for r in rows]
    summary: dict[str, dict[str, dict]] = {m: {} for m in METHODS}
    for m in METHODS:
        for k, rows in per_init[m].items():
            snrs = [r["snr"] for r in rows]
            upper = [(r["signal"] + 2 * r["signal_se"]) / r["noise"] for r in rows]
            summary[m][k] = {
                "snr": statistics.fmean(snrs),  # mean over initialisations
                "snr_se": statistics.stdev(snrs) / math.sqrt(len(snrs)) if len(snrs) > 1
                else rows[0]["signal_se"] / rows[0]["noise"],
                "snr_upper": statistics.fmean(upper),  # (signal + 2 SE) / noise
                "signal": statistics.fmean(r["signal"] for r in rows),
                "noise": statistics.fmean(r["noise"] for r in rows),
                "below_noise": sum(r["below_noise"] for r in rows),  # of `inits`
            }
    return {"per_init": per_init, "snr": summary, "params": list(SCORE_LAYER),
            "samples": cfg.samples, "inits": cfg.inits}


def claims(res: dict, cfg: Config) -> list[Claim]:
    s = res["snr"]
    out = []
    e = s["e2e"]
    if "1" in e and "3" in e:
        r1, r3 = e["1"]["snr"], e["3"]["snr"]
        meas = {"1": r1, "3": r3, "ratio": r3 / r1 if r1 else math.nan,
                "1_below_noise": f"{e['1']['below_noise']}/{cfg.inits} inits",
                "3_below_noise": f"{e['3']['below_noise']}/{cfg.inits} inits",
                "3_upper_2se": e["3"]["snr_upper"]}
        ok = finite(r1, r3) and r1 > 0 and r3 <= 1e-2 * r1
    else:
        meas, ok = {"missing": "ks must include 1 and 3"}, False
    out.append(Claim("end_to_end_snr_collapses",
                     "the end-to-end gradient's SNR at init collapses by k = 3",
                     "SNR_e2e(k=3) ≤ 1e-2 · SNR_e2e(k=1) (mean over inits)", meas, ok,
                     "below float32 precision for k ≥ 3; visually zero from k = 2"))
    d = s["dec"]
    if "1" in d:
        r1 = d["1"]["snr"]
        meas = {k: v["snr"] for k, v in d.items()}
        ok = finite(r1, *meas.values()) and r1 > 0 and all(v >= 0.5 * r1 for v in meas.values())
    else:
        meas, ok = {"missing": "ks must include 1"}, False
    out.append(Claim("decomposition_snr_stable",
                     "the decomposition gradient's SNR at init does not fall with k",
                     "SNR_dec(k) ≥ 0.5 · SNR_dec(1) for every k", meas, ok,
                     "about constant in k (Fig. 4, blue)"))
    return out


def plot(res: dict, cfg: Config, out_dir: Path) -> list[Path]:
    fig, axes = plots.figure(1, 1, width=6.4, height=4.2)
    ax = axes[0, 0]
    colors = {"e2e": "tab:red", "dec": "tab:blue"}
    shift = {"e2e": -0.08, "dec": 0.08}  # side by side: at k = 1 the two SNRs coincide
    for m in METHODS:
        ks = sorted(res["snr"][m], key=int)
        resolved_k, resolved_v, bound_k, bound_v = [], [], [], []
        for k in ks:
            for r in res["per_init"][m][k]:
                x = int(k) + shift[m]
                if r["below_noise"] or r["snr"] <= 0:
                    bound_k.append(x)
                    bound_v.append(math.log(max((r["signal"] + 2 * r["signal_se"]) / r["noise"],
                                                1e-300)))
                else:
                    resolved_k.append(x)
                    resolved_v.append(math.log(r["snr"]))
        means = [(int(k) + shift[m], math.log(res["snr"][m][k]["snr"])) for k in ks
                 if res["snr"][m][k]["snr"] > 0 and res["snr"][m][k]["below_noise"] == 0]
        if means:
            ax.plot(*zip(*means), "s-", color=colors[m], lw=1.5, ms=6,
                    label=f"{LABELS[m]}: mean over inits (all resolved)")
        ax.scatter(resolved_k, resolved_v, color=colors[m], s=14, alpha=0.6,
                   label=f"{LABELS[m]}: one init")
        if bound_k:
            ax.scatter(bound_k, bound_v, color=colors[m], marker="v", s=30,
                       label=f"{LABELS[m]}: signal not resolved from 0 → upper bound (+2 SE)")
    ax.set_xlabel("tuple length k")
    ax.set_ylabel("ln SNR  (‖E ĝ‖² / E‖ĝ − E ĝ‖²)")
    ax.set_title(f"Gradient SNR of N1's last layer at init\n({res['samples']} tuples per "
                 f"estimate, {res['inits']} initialisations)")
    ax.set_xticks(sorted({int(k) for k in res["snr"]["e2e"]}))
    ax.legend(loc="lower left", fontsize=7)
    return [plots.save(fig, out_dir / "snr.png")]


EXPERIMENT = Experiment(
    name="snr", spec="A5",
    title="gradient signal-to-noise ratio at init vs tuple length k",
    source="Shalev-Shwartz et al. 2017, §3.2, Fig. 4",
    config=Config, run=run, claims=claims, plot=plot,
)
