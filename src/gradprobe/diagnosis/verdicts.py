"""Verdicts: which gradient pathologies a probe's numbers show, each with the numbers behind it.

    vanishing  speed(first layer) / speed(last layer) ≤ 0.01, speed = mean_i ‖∂ℓ_i/∂z^l‖ at the
               layer's output (Nielsen's ‖δ^l‖; He-init ReLU nets keep it ≈ 1, SPEC B1)
    exploding  that ratio ≥ 100, or a non-finite weight, loss or gradient (the first non-finite
               layer, in forward order, is named)
    low_snr    batch-gradient SNR B·‖Eĝ‖²/E‖ĝ−Eĝ‖² < 0.5 for some layer: the batch gradient is
               mostly noise (Shalev-Shwartz et al. 2017, §3). With n per-sample gradients the
               estimate's standard error is ≈ √2·B/n for a layer without signal.
    shattered  mean lag-1 autocorrelation of the input gradient along segments between inputs
               ≤ 0.5: white-noise-like gradients (Balduzzi et al. 2017, Fig. 2; shallow nets ≈ 0.9)
    dead       ≥ 10% of a ReLU-like layer's units inactive on every input of the batch
    saturated  ≥ 10% of a sigmoid/tanh layer's units with σ' < 1% of its maximum on ≥ 95% of inputs
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Thresholds:
    """Where each verdict fires (see the module docstring)."""

    vanishing: float = 0.01  # speed ratio first/last layer, at or below
    exploding: float = 100.0  # speed ratio first/last layer, at or above
    batch_snr: float = 0.5  # batch-gradient SNR of a layer, below
    shattered_lag1: float = 0.5  # mean lag-1 ACF of input gradients along segments, at or below
    dead: float = 0.1  # fraction of dead units in a layer, at or above
    saturated: float = 0.1  # fraction of saturated units in a layer, at or above


@dataclass(frozen=True)
class Finding:
    """One verdict. value: the number judged; threshold: where it fires; layer: where (or '')."""

    kind: str
    fired: bool
    value: float | None
    threshold: float
    layer: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        from gradprobe.diagnosis.remedies import what_to_try

        return {**asdict(self), "what_to_try": what_to_try(self.kind) if self.fired else []}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


VERDICTS = ("vanishing", "exploding", "low_snr", "shattered", "dead", "saturated")


def judge_layers(layers: list[dict], finite: bool, t: Thresholds,
                 nonfinite: str | None = None) -> list[Finding]:
    """vanishing, exploding and low_snr from the per-layer rows. Only affine layers (a ≥ 2-D
    weight; `affine` not False) enter the speed ratio. nonfinite: the first layer whose weight,
    output or gradient is not finite."""
    out: list[Finding] = []
    speeds = [(d["name"], d["speed"]) for d in layers
              if d.get("speed") is not None and d.get("affine", True)]
    ratio = None
    if len(speeds) >= 2 and speeds[-1][1] > 0:
        ratio = speeds[0][1] / speeds[-1][1]
    where = f"{speeds[0][0]} vs {speeds[-1][0]}" if len(speeds) >= 2 else ""
    out.append(Finding(
        "vanishing", ratio is not None and ratio <= t.vanishing, ratio, t.vanishing, where,
        f"first/last layer gradient speed {_fmt(ratio)} (fires at ≤ {t.vanishing:g})"))
    bad = not finite or (ratio is not None and (ratio >= t.exploding or not math.isfinite(ratio)))
    out.append(Finding(
        "exploding", bad, ratio, t.exploding, nonfinite if not finite and nonfinite else where,
        (f"non-finite weight, loss or gradient (first at {nonfinite or 'the loss'}); "
         if not finite else "")
        + f"first/last layer gradient speed {_fmt(ratio)} (fires at ≥ {t.exploding:g})"))
    snrs = [(d["name"], d["batch_snr"]) for d in layers if d.get("batch_snr") is not None]
    worst = min(snrs, key=lambda s: s[1] if math.isfinite(s[1]) else -math.inf, default=None)
    val = worst[1] if worst else None
    out.append(Finding(
        "low_snr", val is not None and not val >= t.batch_snr, val, t.batch_snr,
        worst[0] if worst else "",
        f"lowest batch-gradient SNR {_fmt(val)} (fires below {t.batch_snr:g})"))
    return out


def judge_shattering(shattering: dict | None, t: Thresholds) -> list[Finding]:
    """shattered, from the input-gradient autocorrelation."""
    lag1 = shattering.get("lag1") if shattering else None
    return [Finding(
        "shattered", lag1 is not None and not lag1 > t.shattered_lag1, lag1, t.shattered_lag1,
        "input",
        f"input-gradient lag-1 autocorrelation {_fmt(lag1)} (fires at ≤ {t.shattered_lag1:g})"
        + ("" if lag1 is not None else
           f"; not measured: {shattering.get('reason') if shattering else 'no input gradients'}"))]


def judge_activity(activity: list[dict], t: Thresholds) -> list[Finding]:
    """dead, from the ReLU-like layers' dead-unit fractions."""
    dead = max(activity, key=lambda a: a["dead_fraction"], default=None)
    dv = dead["dead_fraction"] if dead else None
    return [Finding(
        "dead", dv is not None and dv >= t.dead, dv, t.dead, dead["name"] if dead else "",
        f"largest fraction of dead units {_fmt(dv)} (fires at ≥ {t.dead:g})")]


def judge_saturation(saturation: list[dict], t: Thresholds) -> list[Finding]:
    """saturated, from the sigmoid/tanh layers' saturated-unit fractions."""
    sat = max(saturation, key=lambda a: a["saturated_fraction"], default=None)
    sv = sat["saturated_fraction"] if sat else None
    return [Finding(
        "saturated", sv is not None and sv >= t.saturated, sv, t.saturated,
        sat["name"] if sat else "",
        f"largest fraction of saturated units {_fmt(sv)} (fires at ≥ {t.saturated:g})")]


def ordered(findings: list[Finding]) -> list[Finding]:
    """Findings in the canonical VERDICTS order, any others after them."""
    rank = {k: i for i, k in enumerate(VERDICTS)}
    return sorted(findings, key=lambda f: rank.get(f.kind, len(rank)))


def judge(layers: list[dict], activity: list[dict], saturation: list[dict],
          shattering: dict | None, finite: bool, t: Thresholds | None = None,
          nonfinite: str | None = None) -> list[Finding]:
    """One Finding per kind from the report's numbers (dicts as in ProbeReport)."""
    t = t or Thresholds()
    return ordered(judge_layers(layers, finite, t, nonfinite) + judge_shattering(shattering, t)
                   + judge_activity(activity, t) + judge_saturation(saturation, t))
