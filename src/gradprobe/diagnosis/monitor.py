"""A training monitor that computes gradient probes every N steps through hooks.

    monitor = gp.GradientMonitor(model, every=16, writer=SummaryWriter("tb"))  # or "log.jsonl"
    for x, y in loader:                     # the training loop is unchanged
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    monitor.close()

A step is one forward pass of `model` with gradients enabled (forwards under torch.no_grad, e.g.
evaluation, are not counted) or, given `optimizer=opt`, one optimizer step: then every forward
and backward between two optimizer steps (gradient accumulation) is pooled into the step's record,
whose statistics are those of the step's whole batch (each micro-batch's mean loss divided by the
number of micro-batches, as usual). On steps 0, N, 2N, ... a forward hook saves each unit's input
and a hook on its output receives the output gradient during the user's own backward; per-sample
gradient moments then follow in closed form or from per-sample gradients of that module alone
(gradprobe.probes.variance), so no extra forward or backward pass of the model is run. On the
other steps each hook returns after one flag test.

What is measured is the gradient as backpropagated: before `clip_grad_norm_` and any optimizer
transformation; with `scaler=GradScaler` the loss scale is divided out; under autocast the
statistics are computed in float32; `batch_dim=1` for sequence-first layouts (modules with a
`batch_first` attribute use their own). Under torch.distributed each rank's sums are all-reduced
on probe steps and rank 0 writes the statistics of the global batch. A compiled model is refused
(attach the monitor to the model before torch.compile and compile the model you keep training).

Probes (tags are `probe/layer`):
    grad_norm   ‖∂L/∂W‖ of the batch loss, per layer (weights; all parameters for a unit without
                a `weight`, e.g. nn.MultiheadAttention or an LSTM)
    snr         single-sample gradient SNR ‖Eĝ‖²/E‖ĝ−Eĝ‖² and its noise E‖ĝ−Eĝ‖² (`variance/`)
    activity    fraction of active units (`activity/`) and of units dead on the whole batch
                (`dead/`) after each ReLU-like module (GELU, SiLU, HF activations included)
    weight_norm ‖W‖_F per layer
    histograms  weight and batch-gradient histograms per layer (TensorBoard writers only)
Default: grad_norm, snr, activity. A module called several times per forward (tied or reused)
is reported per call (`name#2`, ...). Every parameter belongs to a unit (Linear, HF Conv1D,
Conv1d/2d, Embedding, LayerNorm/RMSNorm, MHA, RNN/LSTM/GRU, or any module holding parameters);
the first record's `notes` say what is not measured and why. A non-finite output or gradient on
a probed step is traced to the first module where it appeared (`nonfinite`, and a warning).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from gradprobe.diagnosis.writers import sinks
from gradprobe.probes.activity import is_relu_like
from gradprobe.probes.hooks import is_suspended
from gradprobe.probes.inputs import batch_size
from gradprobe.probes.naming import CallNamer, module_names
from gradprobe.probes.units import Unit, kind_of, sample_units
from gradprobe.probes.variance import MomentHooks, Reduction

PROBES = ("grad_norm", "snr", "activity", "weight_norm", "histograms")
DEFAULT_PROBES = ("grad_norm", "snr", "activity")


def _compiled(model: nn.Module) -> bool:
    return type(model).__name__ == "OptimizedModule" or \
        getattr(model, "_compiled_call_impl", None) is not None


def _rank() -> int:
    d = torch.distributed
    return d.get_rank() if d.is_available() and d.is_initialized() else 0


class GradientMonitor:
    """Log gradient probes of `model` every `every` training steps (see the module docstring).

    writer: a torch.utils.tensorboard.SummaryWriter, a path ending in .jsonl or .csv, a wandb run,
        a callable(step, scalars), a list of these, or None (values kept in `history` only).
    probes: a subset of PROBES. reduction: how the loss reduces per-sample losses ('mean' or
        'sum'). modules: {name: module} to track (default: every unit of the model).
    optimizer: count optimizer steps and pool micro-batches (gradient accumulation).
    accumulation: 'mean' (default) when each micro-batch's loss is divided by the number of
        micro-batches, 'sum' when it is not (e.g. Hugging Face's Trainer for a model whose forward
        takes **kwargs but ignores num_items_in_batch).
    scaler: a torch GradScaler whose scale is divided out. batch_dim: where samples sit.
    keep_history: keep {"step", tag: value} dicts in `history` (default True).
    """

    def __init__(self, model: nn.Module, every: int = 50, writer: Any = None,
                 probes: Iterable[str] = DEFAULT_PROBES, reduction: Reduction = "mean",
                 modules: dict[str, nn.Module] | None = None, keep_history: bool = True,
                 optimizer: torch.optim.Optimizer | None = None, scaler: Any = None,
                 batch_dim: int = 0, accumulation: Reduction = "mean") -> None:
        self._check_every(every)
        if _compiled(model):
            raise ValueError("GradientMonitor: the model is compiled; attach the monitor to the "
                             "uncompiled model before torch.compile (hooks added later are not "
                             "seen by the compiled graph)")
        self.probes = tuple(probes)
        unknown = [p for p in self.probes if p not in PROBES]
        if unknown:
            raise ValueError(f"unknown probes {unknown}; choose from {list(PROBES)}")
        self.model, self.every, self.keep_history = model, every, keep_history
        self.optimizer, self.scaler, self.batch_dim = optimizer, scaler, batch_dim
        self.history: list[dict[str, Any]] = []
        self.steps = 0  # training forwards (or optimizer steps) seen
        self._step: int | None = None  # the step being probed, until its values are written
        units = sample_units(model) if modules is None else {
            k: Unit(m, kind_of(m), {n: p for n, p in m.named_parameters(recurse=False)
                                    if p.requires_grad}) for k, m in modules.items()}
        self._units = units
        self.notes = self._coverage(model, units)
        grads = any(p in self.probes for p in ("grad_norm", "snr", "histograms"))
        self._moments = None
        loss_scale = None
        if scaler is not None:
            def loss_scale() -> float:
                return float(scaler.get_scale()) if scaler.is_enabled() else 1.0
        if grads and units:
            self._moments = MomentHooks(units, reduction, on_complete=self._backward_done,
                                        batch_dim=batch_dim, loss_scale=loss_scale,
                                        accumulation=accumulation).attach(model)
        self._acts: dict[str, list] = {}
        self._act_namer = CallNamer()
        self._handles = [model.register_forward_pre_hook(self._pre_forward, with_kwargs=True),
                         model.register_forward_hook(self._post_forward)]
        if "activity" in self.probes:
            names = module_names(model)
            self._handles += [m.register_forward_hook(self._activity_hook(names[m]))
                              for m in model.modules() if is_relu_like(m)]
        if optimizer is not None:
            self._handles.append(optimizer.register_step_post_hook(self._optimizer_step))
        self._scaler_update = None
        if scaler is not None and optimizer is not None:  # a step skipped on inf still ends
            self._scaler_update = scaler.update

            def update(*a: Any, **k: Any) -> Any:
                if not self._stepped:  # scaler.step skipped optimizer.step (inf/NaN grads)
                    self._optimizer_step(None, (), {})
                self._stepped = False
                return self._scaler_update(*a, **k)
            scaler.update = update
        self._capturing = False
        self._stepped = False
        self._first_written = False
        if optimizer is not None:  # step 0's window is open from the start
            self._begin()
            self._open(True)
        self._sinks = sinks(writer)  # last: a bad writer leaves nothing open

    @staticmethod
    def _check_every(every: Any) -> None:
        """TypeError unless an int (not a bool); ValueError unless ≥ 1."""
        if isinstance(every, bool) or not isinstance(every, int):
            raise TypeError(f"every must be an int number of steps, got {every!r}")
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")

    def _coverage(self, model: nn.Module, units: dict[str, Unit]) -> list[str]:
        held = {id(p) for u in units.values() for p in u.params.values()}
        miss = [k for k, p in model.named_parameters() if p.requires_grad and id(p) not in held]
        notes = ["statistics of the gradient as backpropagated: before clip_grad_norm_ and "
                 "optimizer transformations" + (", loss scale divided out"
                                                if self.scaler is not None else "")]
        if miss:
            notes.append(f"not measured: {', '.join(miss)} (held by no tracked module)")
        return notes

    # ---- hooks -------------------------------------------------------------------------------
    def _begin(self) -> None:
        self._step = self.steps
        if self._moments is not None:
            self._moments.reset()
        self._acts = {}

    def _open(self, on: bool) -> None:
        """Start or stop capturing (optimizer mode: the window of one whole optimizer step)."""
        self._capturing = on
        if self._moments is not None:
            self._moments.active = on

    def _new_forward(self, args: tuple, kwargs: Any) -> None:
        self._act_namer.reset()
        if self._moments is not None:
            self._moments.new_forward()
            try:
                self._moments.batch_size = batch_size(args if args else kwargs, self.batch_dim)
            except (ValueError, IndexError):
                self._moments.batch_size = None

    def _pre_forward(self, module: nn.Module, args: tuple, kwargs: Any = None) -> None:
        if not torch.is_grad_enabled() or is_suspended():
            return
        if self.optimizer is not None:  # steps are counted by the optimizer
            if self._capturing:
                self._new_forward(args, kwargs)
            return
        if self._step is not None:  # the previous probed step never finished its backward
            self._finish()
        if self.steps % self.every == 0:
            self._begin()
            self._open(True)
            self._new_forward(args, kwargs)
        self.steps += 1

    def _post_forward(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.optimizer is None and self._capturing and not is_suspended():
            self._open(False)
            if self._moments is None or self._moments.pending == 0:
                self._finish()  # nothing captured: no backward to wait for

    def _backward_done(self) -> None:
        if self.optimizer is None:
            self._finish()
        else:  # a micro-batch's backward is complete: the next forward numbers calls afresh
            self._new_forward((), {})

    def _optimizer_step(self, opt: Any, args: Any, kwargs: Any) -> None:
        """After optimizer.step (post hook: Lightning runs forward and backward inside step's
        closure): write the probed step, then open the next one's window if it is probed."""
        if self._step is not None:
            self._finish()
        self.steps += 1
        self._stepped = True
        if self.steps % self.every == 0:
            self._begin()
            self._open(True)
        else:
            self._open(False)

    def _activity_hook(self, name: str):
        def hook(m: nn.Module, args: tuple, output: Any) -> None:
            if not self._capturing or is_suspended() or not torch.is_grad_enabled():
                return
            with torch.no_grad():
                pre = args[0].detach()
                n = pre.shape[0]
                on = torch.count_nonzero((pre > 0).reshape(n, -1), dim=0)  # (units,) counts
                key = self._act_namer(name)
                if key in self._acts:
                    self._acts[key][0] += on
                    self._acts[key][1] += n
                else:
                    self._acts[key] = [on, n]
        return hook

    # ---- output ------------------------------------------------------------------------------
    def _finish(self) -> None:
        step, self._step = self._step, None
        if step is None:
            return
        tags: list[str] = []
        vals: list[Tensor] = []
        hists: dict[str, Tensor] = {}
        mo = self._moments
        res = mo.results if mo is not None else {}
        with torch.no_grad():
            for layer, d in res.items():
                parts = [d["weight"]] if "weight" in d else list(d.values())
                n = parts[0].n
                mean_sq = sum(p.mean_sq for p in parts)
                noise = sum(p.variance for p in parts)
                if "grad_norm" in self.probes:
                    # ∂L/∂W = ḡ for a mean (n·ḡ for a sum) is what the optimiser sees
                    scale = 1.0 if mo.reduction == "mean" else float(n)
                    tags.append(f"grad_norm/{layer}")
                    vals.append(mean_sq.sqrt() * scale)
                if "snr" in self.probes:
                    tags += [f"snr/{layer}", f"variance/{layer}"]
                    vals += [(mean_sq - noise / n) / noise, noise]
                if "histograms" in self.probes and "weight" in d:
                    hists[f"gradient/{layer}"] = d["weight"].mean.detach().cpu()
            for name, u in self._units.items():
                w = u.params.get("weight")
                if "weight_norm" in self.probes:
                    tags.append(f"weight_norm/{name}")
                    vals.append(w.detach().norm() if w is not None else torch.cat(
                        [p.detach().reshape(-1) for p in u.params.values()]).norm())
                if "histograms" in self.probes and w is not None:
                    hists[f"weight/{name}"] = w.detach().cpu()
            for name, (on, n) in self._acts.items():
                tags += [f"activity/{name}", f"dead/{name}"]
                vals += [on.sum() / on.numel() / n, (on == 0).sum() / on.numel()]
            numbers = torch.stack([v.float().reshape(()) for v in vals]).tolist() if vals else []
        self._acts = {}
        info: dict[str, Any] = {}
        if mo is not None:
            bad = mo.first_nonfinite()
            if bad:
                info["nonfinite"] = bad
                warnings.warn(f"gradprobe: non-finite values at step {step}, first at {bad}",
                              RuntimeWarning, stacklevel=2)
            if mo.errors:
                info["errors"] = dict(mo.errors)
            mo.reset()
        if not self._first_written:
            info["notes"] = list(self.notes) + [
                f"not measured: {k} ({why})" for k, why in (mo.skipped if mo else {}).items()]
            self._first_written = True
        scalars = dict(zip(tags, numbers, strict=True))
        if self.keep_history:
            self.history.append({"step": step, **scalars, **info})
        if _rank() == 0:
            for s in self._sinks:
                s.write(step, scalars, hists, info)

    def close(self) -> None:
        """Write a pending step, remove every hook and close file writers (flush TensorBoard)."""
        seen = self._acts or (self._moments is not None and self._moments.raw)
        if self._step is not None and (self.optimizer is None or seen):
            self._finish()
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._scaler_update is not None:
            del self.scaler.update  # the instance attribute; the class method shows again
            self._scaler_update = None
        if self._moments is not None:
            self._moments.detach()
        for s in self._sinks:
            s.close()
        self._sinks = []

    def __enter__(self) -> GradientMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
