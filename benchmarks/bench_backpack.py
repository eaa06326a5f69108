"""Per-layer gradient variance: gradprobe's closed forms against BackPACK's `Variance` extension.

Same model, same batch, one process: the MLP 784-256-256-256-10 (batch 128, cross-entropy) and
SPEC A4's N1 CNN (batch 200, hinge loss on its score), both with reduction='mean'.
  agreement  per layer, BackPACK's `variance` rescaled to the unbiased variance of the per-sample
             gradients (× N³/(N−1), see below) against gradprobe's; relative error of the total
             (tr Cov) and of the elementwise tensor (‖a − b‖/‖b‖), in float64 and float32.
  time       forward + backward with the extension / hooks, against a plain forward + backward in
             the same process; blocks interleaved in a rotating order, median over reps of the
             process-CPU-time ratios (the machine is shared).
  memory     peak RSS growth of a fresh subprocess running 5 such steps (imports and model
             built before the baseline reading).
BackPACK with reduction='mean' over N samples stores Var of the 1/N-scaled per-sample gradients
divided by N: mean_i (g_i/N)² − (mean_i g_i/N)², then /N... i.e. (1/N³)(Σg_i² − N ḡ²)·... so
the unbiased variance of the per-sample gradients is `variance · N³/(N−1)` (checked here).

    .venv/bin/pip install backpack-for-pytorch --no-deps
    .venv/bin/pip install einops unfoldNd -c <(echo torch==2.13.0)
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_backpack.py [--reps 15]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import time
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_monitor import mlp_problem, n1_problem  # noqa: E402
from gradprobe.probes.variance import MomentHooks, affine_modules  # noqa: E402

PROBLEMS = {"mlp": mlp_problem, "n1": n1_problem}


def have_backpack() -> bool:
    try:
        import backpack  # noqa: F401
    except ImportError:
        return False
    return True


def setup(name: str, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    model, loss_fn, x, y = PROBLEMS[name](g)
    model = model.to(dtype)
    return model, loss_fn, x.to(dtype), y.to(dtype) if y.is_floating_point() else y


class Ours:
    """gradprobe: hooks on the model, per-layer variance after loss.backward()."""

    def __init__(self, model, elementwise: bool) -> None:
        self.model, self.elementwise = model, elementwise
        self.hooks = MomentHooks(affine_modules(model), "mean", elementwise).attach(model)
        self.hooks.active = True

    def step(self, loss_fn, x, y) -> dict[str, torch.Tensor]:
        self.hooks.reset()
        self.model.zero_grad(set_to_none=True)
        loss_fn(self.model(x), y).backward()
        return {f"{k}.{p}": (m.elementwise_variance if self.elementwise else m.variance)
                for k, d in self.hooks.results.items() for p, m in d.items()}


class BackPACK:
    def __init__(self, model) -> None:
        from backpack import extend

        self.model = extend(model)
        # BackPACK warns that N1 (the root, with parameters only in its children) has no
        # extension of its own; its Linear and Conv2d children are the ones that compute
        warnings.filterwarnings("ignore", message="Extension saving to variance does not have")

    def step(self, loss_fn, x, y) -> dict[str, torch.Tensor]:
        from backpack import backpack
        from backpack.extensions import Variance

        self.model.zero_grad(set_to_none=True)
        loss = loss_fn(self.model(x), y)
        with backpack(Variance()), warnings.catch_warnings():
            # BackPACK's full backward hook on the first layer, whose input needs no gradient
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss.backward()
        n = x.shape[0]
        return {k: p.variance * n**3 / (n - 1) for k, p in self.model.named_parameters()}


class Plain:
    def __init__(self, model) -> None:
        self.model = model

    def step(self, loss_fn, x, y) -> dict:
        self.model.zero_grad(set_to_none=True)
        loss_fn(self.model(x), y).backward()
        return {}


def make(method: str, model):
    m = copy.deepcopy(model)
    if method == "plain":
        return Plain(m)
    if method == "backpack":
        return BackPACK(m)
    return Ours(m, elementwise=(method == "ours_elementwise"))


def agreement(name: str, dtype) -> dict[str, float]:
    model, loss_fn, x, y = setup(name, dtype)
    bp = make("backpack", model).step(loss_fn, x, y)
    tot = make("ours_total", model).step(loss_fn, x, y)
    el = make("ours_elementwise", model).step(loss_fn, x, y)
    worst_total = max(float((tot[k] - bp[k].sum()).abs() / bp[k].sum().abs()) for k in tot)
    worst_el = max(float((el[k] - bp[k]).norm() / bp[k].norm()) for k in el)
    return {"total": worst_total, "elementwise": worst_el, "layers": len(tot)}


def timing(name: str, reps: int, block: int) -> dict[str, float]:
    model, loss_fn, x, y = setup(name)
    methods = ["plain", "backpack", "ours_total", "ours_elementwise"]
    runners = {m: make(m, model) for m in methods}
    for r in runners.values():
        for _ in range(3):
            r.step(loss_fn, x, y)
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    for rep in range(reps):
        order = methods[rep % 4:] + methods[:rep % 4]
        for m in order:
            t = time.process_time()
            for _ in range(block):
                out = runners[m].step(loss_fn, x, y)
                for v in out.values():  # materialise the results
                    v.sum().item()
            cpu[m].append(time.process_time() - t)
    res = {"plain_ms": 1e3 * statistics.median(cpu["plain"]) / block}
    for m in methods[1:]:
        res[m] = statistics.median(a / b for a, b in zip(cpu[m], cpu["plain"], strict=True))
    res["ours_total/backpack"] = statistics.median(
        a / b for a, b in zip(cpu["ours_total"], cpu["backpack"], strict=True))
    res["ours_elementwise/backpack"] = statistics.median(
        a / b for a, b in zip(cpu["ours_elementwise"], cpu["backpack"], strict=True))
    return res


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(name: str, method: str) -> None:
    """Print the peak RSS growth (MiB) over 5 steps of `method` in this fresh process.

    Run with MALLOC_MMAP_THRESHOLD_=65536 so that every tensor buffer is its own mapping, returned
    to the OS when freed: resident memory then follows the live tensors. The peak (VmHWM) is reset
    after one warm-up step (Linux: write 5 to /proc/self/clear_refs).
    """
    import backpack  # noqa: F401  (imported by every method, so imports cost the same)

    model, loss_fn, x, y = setup(name)
    runner = make(method, model)
    del model
    runner.step(loss_fn, x, y)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    for _ in range(5):
        out = runner.step(loss_fn, x, y)
        for v in out.values():
            v.sum().item()
    print((_status_kib("VmHWM") - base) / 1024)


def memory(name: str) -> dict[str, float]:
    out = {}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    for method in ("plain", "backpack", "ours_total", "ours_elementwise"):
        r = subprocess.run([sys.executable, __file__, "--memory-child", name, method],
                           capture_output=True, text=True, check=True, env=env)
        out[method] = float(r.stdout.strip().splitlines()[-1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--block", type=int, default=4, help="steps per timed block")
    ap.add_argument("--only", choices=sorted(PROBLEMS), default=None)
    ap.add_argument("--memory-child", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("GRADPROBE_THREADS", 1)))
    if not have_backpack():
        print("bench_backpack: skipped: BackPACK is not installed. Install it without letting pip "
              "replace torch:\n  .venv/bin/pip install backpack-for-pytorch --no-deps\n"
              "  .venv/bin/pip install einops unfoldNd -c <(echo torch==2.13.0)")
        return 0
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, "
          f"torch {torch.__version__}")
    for name in PROBLEMS:
        if args.only and name != args.only:
            continue
        a64, a32 = agreement(name, torch.float64), agreement(name, torch.float32)
        print(f"[{name}] agreement with BackPACK over {a64['layers']} parameters (max relative "
              f"error): float64 total {a64['total']:.1e}, elementwise {a64['elementwise']:.1e}; "
              f"float32 total {a32['total']:.1e}, elementwise {a32['elementwise']:.1e}",
              flush=True)
        t = timing(name, args.reps, args.block)
        print(f"[{name}] time per step vs plain fwd+bwd ({t['plain_ms']:.2f} ms): BackPACK "
              f"{t['backpack']:.2f}x, gradprobe total {t['ours_total']:.2f}x, gradprobe "
              f"elementwise {t['ours_elementwise']:.2f}x; gradprobe/BackPACK: total "
              f"{t['ours_total/backpack']:.2f}, elementwise {t['ours_elementwise/backpack']:.2f}",
              flush=True)
        mem = memory(name)
        print(f"[{name}] peak RSS growth over 5 steps (MiB): " + ", ".join(
            f"{k} {v:.1f}" for k, v in mem.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
