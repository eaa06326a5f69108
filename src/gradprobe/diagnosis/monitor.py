"""A training monitor that computes gradient probes every N steps through hooks.

    monitor = gp.GradientMonitor(model, every=16, writer=SummaryWriter("tb"))  # or "log.jsonl"
    for x, y in loader:                     # the training loop is unchanged
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    monitor.close()

A step is one forward pass of `model` with gradients enabled (forwards under torch.no_grad, e.g.
evaluation, are not counted). On steps 0, N, 2N, ... a forward hook saves each affine layer's input
and a tensor hook on its output receives the output gradient during the user's own backward; the
per-sample gradient moments then follow in closed form (gradprobe.probes.variance), so no extra
forward or backward pass is run. On the other steps each hook returns after one flag test.

Probes (tags are `probe/layer`):
    grad_norm   ‖∂L/∂W‖ of the batch loss, per layer (weights)
    snr         single-sample gradient SNR ‖Eĝ‖²/E‖ĝ−Eĝ‖² and its noise E‖ĝ−Eĝ‖² (`variance/`)
    activity    fraction of active units (`activity/`) and of units dead on the whole batch
                (`dead/`) after each ReLU-like module
    weight_norm ‖W‖_F per layer
    histograms  weight and batch-gradient histograms per layer (TensorBoard writers only)
Default: grad_norm, snr, activity. A module called several times per forward (tied or reused)
is reported per call (`name#2`, ...). Layers other than Linear / Conv1d / Conv2d are not tracked.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradprobe.probes.activity import is_relu_like
from gradprobe.probes.variance import MomentHooks, Reduction, affine_modules

PROBES = ("grad_norm", "snr", "activity", "weight_norm", "histograms")
DEFAULT_PROBES = ("grad_norm", "snr", "activity")


class _JSONLSink:
    """One JSON object per probed step: {"step": s, "probe/layer": value, ...}."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = path.open("a", encoding="utf-8")

    def write(self, step: int, scalars: dict[str, float], hists: dict[str, Tensor]) -> None:
        self.f.write(json.dumps({"step": step, **scalars}) + "\n")

    def close(self) -> None:
        self.f.close()


class _CSVSink:
    """Long format, one row per value: step,tag,value (stable columns whatever the model)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        self.f = path.open("a", encoding="utf-8", newline="")
        self.w = csv.writer(self.f)
        if new:
            self.w.writerow(["step", "tag", "value"])

    def write(self, step: int, scalars: dict[str, float], hists: dict[str, Tensor]) -> None:
        self.w.writerows([step, k, v] for k, v in scalars.items())

    def close(self) -> None:
        self.f.close()


class _TBSink:
    """A torch.utils.tensorboard SummaryWriter (or anything with add_scalar/add_histogram)."""

    def __init__(self, writer: Any) -> None:
        self.w = writer

    def write(self, step: int, scalars: dict[str, float], hists: dict[str, Tensor]) -> None:
        for k, v in scalars.items():
            self.w.add_scalar(k, v, step)
        for k, h in hists.items():
            self.w.add_histogram(k, h, step)

    def close(self) -> None:
        self.w.flush()


def _sink(w: Any) -> Any:
    if isinstance(w, str | Path):
        p = Path(w)
        if p.suffix == ".jsonl":
            return _JSONLSink(p)
        if p.suffix == ".csv":
            return _CSVSink(p)
        raise ValueError(f"writer path must end in .jsonl or .csv, got {str(p)!r}")
    if hasattr(w, "add_scalar"):
        return _TBSink(w)
    raise TypeError(f"writer must be a SummaryWriter, a .jsonl/.csv path or a list; got {w!r}")


class GradientMonitor:
    """Log gradient probes of `model` every `every` training steps (see the module docstring).

    writer: a torch.utils.tensorboard.SummaryWriter, a path ending in .jsonl or .csv, a list of
        these, or None (values are kept in `history` only).
    probes: a subset of PROBES. reduction: how the loss reduces per-sample losses ('mean' or
        'sum'): needed to turn the output gradients into per-sample gradients.
    modules: {name: module} of affine layers to track (default: every Linear / Conv1d / Conv2d).
    keep_history: keep {"step", tag: value} dicts in `history` (default True).
    """

    def __init__(self, model: nn.Module, every: int = 50, writer: Any = None,
                 probes: Iterable[str] = DEFAULT_PROBES, reduction: Reduction = "mean",
                 modules: dict[str, nn.Module] | None = None, keep_history: bool = True) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.probes = tuple(probes)
        unknown = [p for p in self.probes if p not in PROBES]
        if unknown:
            raise ValueError(f"unknown probes {unknown}; choose from {list(PROBES)}")
        writers = writer if isinstance(writer, list | tuple) else [writer]
        self._sinks = [_sink(w) for w in writers if w is not None]
        self.model, self.every, self.keep_history = model, int(every), keep_history
        self.history: list[dict[str, float]] = []
        self.steps = 0  # training forwards seen
        self._step: int | None = None  # the step being probed, until its values are written
        self._affine = modules if modules is not None else affine_modules(model)
        grads = any(p in self.probes for p in ("grad_norm", "snr", "histograms"))
        self._moments = None
        if grads and self._affine:
            self._moments = MomentHooks(self._affine, reduction,
                                        on_complete=self._finish).attach(model)
        self._acts: dict[str, Tensor] = {}
        self._handles = [model.register_forward_pre_hook(self._pre_forward),
                         model.register_forward_hook(self._post_forward)]
        if "activity" in self.probes:
            names = {m: n for n, m in model.named_modules()}
            self._handles += [m.register_forward_hook(self._activity_hook(names[m]))
                              for m in model.modules() if is_relu_like(m)]
        self._capturing = False

    # ---- hooks -------------------------------------------------------------------------------
    def _pre_forward(self, module: nn.Module, args: tuple) -> None:
        if not torch.is_grad_enabled():
            return
        if self._step is not None:  # the previous probed step never finished its backward
            self._finish()
        if self.steps % self.every == 0:
            self._step = self.steps
            self._capturing = True
            if self._moments is not None:
                self._moments.reset()
                self._moments.active = True
        self.steps += 1

    def _post_forward(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._capturing:
            self._capturing = False
            if self._moments is not None:
                self._moments.active = False
                if self._moments.pending == 0:  # nothing captured: no backward to wait for
                    self._finish()
            else:
                self._finish()

    def _activity_hook(self, name: str):
        def hook(m: nn.Module, args: tuple, output: Any) -> None:
            if not self._capturing:
                return
            with torch.no_grad():
                pre = args[0].detach()
                n = pre.shape[0]
                on = torch.count_nonzero((pre > 0).reshape(n, -1), dim=0)  # (units,) counts
                key, k = name, 2
                while key in self._acts:
                    key, k = f"{name}#{k}", k + 1
                self._acts[key] = torch.stack([on.sum() / on.numel() / n,
                                               (on == 0).sum() / on.numel()])
        return hook

    # ---- output ------------------------------------------------------------------------------
    def _finish(self) -> None:
        step, self._step = self._step, None
        if step is None:
            return
        tags: list[str] = []
        vals: list[Tensor] = []
        hists: dict[str, Tensor] = {}
        res = self._moments.results if self._moments is not None else {}
        with torch.no_grad():
            for layer, d in res.items():
                w = d["weight"]
                if "grad_norm" in self.probes:
                    # ∂L/∂W = n·ḡ (mean reduction: ḡ; sum: n·ḡ) is what the optimiser sees
                    scale = 1.0 if self._moments.reduction == "mean" else float(w.n)
                    tags.append(f"grad_norm/{layer}")
                    vals.append(w.mean_sq.sqrt() * scale)
                if "snr" in self.probes:
                    _, noise, snr = w.snr_parts()
                    tags += [f"snr/{layer}", f"variance/{layer}"]
                    vals += [snr, noise]
                if "histograms" in self.probes:
                    hists[f"gradient/{layer}"] = w.mean.detach().cpu()
            for name, m in self._affine.items():
                if "weight_norm" in self.probes:
                    tags.append(f"weight_norm/{name}")
                    vals.append(m.weight.detach().norm())
                if "histograms" in self.probes:
                    hists[f"weight/{name}"] = m.weight.detach().cpu()
            for name, a in self._acts.items():
                tags += [f"activity/{name}", f"dead/{name}"]
                vals += [a[0], a[1]]
            numbers = torch.stack([v.float().reshape(()) for v in vals]).tolist() if vals else []
        self._acts = {}
        if self._moments is not None:
            self._moments.reset()
        scalars = dict(zip(tags, numbers, strict=True))
        if self.keep_history:
            self.history.append({"step": step, **scalars})
        for s in self._sinks:
            s.write(step, scalars, hists)

    def close(self) -> None:
        """Write a pending step, remove every hook and close file writers (flush TensorBoard)."""
        if self._step is not None:
            self._finish()
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._moments is not None:
            self._moments.detach()
        for s in self._sinks:
            s.close()
        self._sinks = []

    def __enter__(self) -> GradientMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
