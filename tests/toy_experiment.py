"""A tiny experiment for testing the run store and CLI machinery without real compute."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gradprobe import plots
from gradprobe.claims import legacy_claim as Claim
from gradprobe.config import ExperimentConfig, require
from gradprobe.experiments.base import Experiment


@dataclass(frozen=True)
class Config(ExperimentConfig):
    steps: int = 20  # loop length
    blow_up: bool = False  # produce a NaN (a diverged run)
    crash: bool = False  # raise inside run (a failed run)
    dims: tuple[int, ...] = (2, 3)

    def validate(self) -> None:
        require(self.steps >= 1, "steps must be ≥ 1")


def run(cfg: Config, ctx) -> dict:
    if cfg.crash:
        raise RuntimeError("boom")
    out = {}
    for d in cfg.dims:
        def work(d=d):
            g = ctx.generator("w", d)
            state = ctx.load_checkpoint(f"d{d}")
            w = torch.zeros(d) if state is None else state["w"]
            start = 0 if state is None else state["step"]
            if state is not None:
                g.set_state(state["g"])
            for step in range(start, cfg.steps):
                w = w + torch.randn(d, generator=g)
                ctx.log("w", step, d=d, norm=float(w.norm()))
                ctx.save_checkpoint({"w": w, "step": step + 1, "g": g.get_state()}, f"d{d}")
            return math.nan if cfg.blow_up and d == 3 else float(w.norm())
        out[str(d)] = ctx.stage(f"d{d}", work)
    return {"norms": out}


def claims(res: dict, cfg: Config) -> list[Claim]:
    vals = {k: v for k, v in res["norms"].items()}
    return [Claim("positive", "norms are positive", "> 0", vals,
                  all(v is not None and v > 0 for v in vals.values()), "n/a")]


def plot(res: dict, cfg: Config, out_dir) -> list:
    fig, ax = plots.figure()
    ax[0, 0].plot([1, 2], [1, 2])
    return [plots.save(fig, out_dir / "toy.png")]


EXPERIMENT = Experiment("toy", "Z0", "a toy", "tests", Config, run, claims, plot)
