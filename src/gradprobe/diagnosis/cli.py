"""`gradprobe diagnose FILE.py:FACTORY`: probe your own model from the command line.

FACTORY is a function of no arguments in FILE.py that returns either
    (model, loss_fn, (inputs, targets))    a batch to probe the model's loss on, or
    (model, input_shape)                   e.g. (3, 32, 32): a Gaussian batch is drawn and the
                                           loss is the squared norm of the output over 2
                                           (the input-gradient and activity probes are the
                                           informative ones then).
It may also return a dict with keys model, loss_fn, batch or model, input_shape. The report is
printed and written to OUT/probe.json and OUT/probe.png. Exit codes: 0 done; 2 the factory cannot
be imported or called or returns something else (one message, nothing written); 3 the model or
loss failed while being probed.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from gradprobe.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of the `diagnose` subcommand."""
    p.add_argument("target", metavar="FILE.py:FACTORY",
                   help="a Python file and a function in it returning (model, loss_fn, batch) "
                        "or (model, input_shape)")
    p.add_argument("--out", type=Path, default=Path("diagnose"),
                   help="directory for probe.json and probe.png (default ./diagnose)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="batch size when the factory gives an input shape (default 64)")
    p.add_argument("--max-samples", type=int, default=128,
                   help="samples that get per-sample gradients (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default $GRADPROBE_THREADS or 1)")


def load_factory(target: str) -> Any:
    """Import FILE.py and return its FACTORY callable; UsageError with one clear message else."""
    file, sep, name = str(target).rpartition(":")
    if not sep or not file or not name:
        raise UsageError(f"diagnose target must look like FILE.py:FACTORY, got {target!r}")
    path = Path(file)
    if not path.is_file():
        raise UsageError(f"diagnose: no such file {str(path)!r}")
    spec = importlib.util.spec_from_file_location(f"_gradprobe_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"diagnose: cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: any error becomes one message
        raise UsageError(f"diagnose: importing {str(path)!r} failed: "
                         f"{type(e).__name__}: {e}") from None
    finally:
        sys.path.pop(0)
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        raise UsageError(f"diagnose: {str(path)!r} has no function {name!r}")
    return fn


def _unpack(res: Any, batch_size: int, seed: int, device: Any) -> tuple[Any, Any, Any, str]:
    """(model, loss_fn, batch, description) from what the factory returned."""
    import torch
    from torch import nn

    if isinstance(res, dict):
        if "input_shape" in res:
            res = (res.get("model"), res["input_shape"])
        else:
            res = (res.get("model"), res.get("loss_fn"), res.get("batch"))
    shape_form = (isinstance(res, tuple | list) and len(res) == 2
                  and isinstance(res[1], tuple | list | torch.Size)
                  and all(isinstance(v, int) for v in res[1]))
    batch_form = isinstance(res, tuple | list) and len(res) == 3
    if not (shape_form or batch_form) or not isinstance(res[0], nn.Module):
        raise UsageError(
            "diagnose: the factory must return (model, loss_fn, (inputs, targets)) or "
            f"(model, input_shape) with model an nn.Module; got {_describe(res)}")
    model = res[0].to(device)
    if shape_form:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn((batch_size, *res[1]), generator=g).to(device)

        def half_sq(out: Any, _t: Any) -> Any:
            return 0.5 * out.pow(2).reshape(out.shape[0], -1).sum(1).mean()
        return model, half_sq, (x, torch.zeros(batch_size, device=device)), \
            f"Gaussian inputs {tuple(x.shape)}, loss ½‖f(x)‖²"
    loss_fn, batch = res[1], res[2]
    if not callable(loss_fn):
        raise UsageError(f"diagnose: the loss must be callable, got {_describe(loss_fn)}")
    if not (isinstance(batch, tuple | list) and len(batch) == 2):
        raise UsageError(f"diagnose: the batch must be (inputs, targets), got {_describe(batch)}")

    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device)
        return type(v)(move(a) for a in v) if isinstance(v, tuple | list) else v
    return model, loss_fn, (move(batch[0]), move(batch[1])), "the factory's batch"


def _describe(v: Any) -> str:
    if isinstance(v, tuple | list):
        return f"a {type(v).__name__} of {len(v)} ({', '.join(type(a).__name__ for a in v)})"
    return type(v).__name__


def run(args: argparse.Namespace) -> int:
    """Run the subcommand: import, probe, print, write JSON and figure. Returns the exit code."""
    from gradprobe.runtime import pick_device, set_threads

    set_threads(getattr(args, "threads", None))
    device = pick_device(getattr(args, "device", "cpu"))
    if args.batch_size < 2:
        raise UsageError("--batch-size must be at least 2")
    fn = load_factory(args.target)
    if inspect.signature(fn).parameters and any(
            p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                p.POSITIONAL_OR_KEYWORD)
            for p in inspect.signature(fn).parameters.values()):
        raise UsageError(f"diagnose: {args.target} must take no required arguments")
    try:
        res = fn()
    except Exception as e:
        raise UsageError(f"diagnose: calling {args.target} failed: "
                         f"{type(e).__name__}: {e}") from None
    model, loss_fn, batch, what = _unpack(res, args.batch_size, args.seed, device)

    from gradprobe.diagnosis.report import probe

    try:
        report = probe(model, loss_fn, batch, max_samples=args.max_samples, seed=args.seed)
    except Exception as e:  # the user's model or loss failed under the probe
        print(f"gradprobe: error: diagnose: probing {args.target} failed: "
              f"{type(e).__name__}: {e}", file=sys.stderr)
        return 3
    print(report.table())
    out = Path(args.out)
    j = report.save_json(out / "probe.json")
    f = report.plot(out / "probe.png")
    print(f"\n({what}) wrote {j} and {f}")
    return 0
