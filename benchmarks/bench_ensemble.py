"""Time S parity seeds trained at once (gradprobe.training.ensemble) against S sequential runs.

Both train the SPEC A1 setup (Linear(d, 10d) → ReLU → Linear(10d, 1), hinge, SGD lr 0.01,
batch 128, fresh data every step from each seed's own generator) for the same number of steps,
in the same process, one thread. The sequential baseline is the plain PyTorch loop a user would
write (nn.Module + torch.optim.SGD, zero_grad / backward / step). The ensemble is timed on its
fast path (batched matmuls + one backward) and on the generic torch.func path (vmap of
grad(functional_call)).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_ensemble.py [--seeds 16]
        [--dims 5,10,30] [--steps 1500]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from gradprobe.tasks.parity import parity_labels, parity_net, sample_inputs, sample_secret
from gradprobe.training.ensemble import SGD, Ensemble
from gradprobe.training.metrics import hinge

CHUNK = 100  # steps of data drawn per call (the experiment draws one evaluation interval)


def _gens(key: int, seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1000 * key + s) for s in range(seeds)]


def sequential(seeds: int, d: int, steps: int, batch: int) -> None:
    for s in range(seeds):
        (gi,), (gd,) = _gens(0, seeds)[s:s + 1], _gens(1, seeds)[s:s + 1]
        net = parity_net(d, gi)
        v = sample_secret(d, gd)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        for start in range(0, steps, CHUNK):
            x = sample_inputs((CHUNK, batch), d, gd)
            y = parity_labels(x, v)
            for j in range(min(CHUNK, steps - start)):
                opt.zero_grad()
                hinge(net(x[j]), y[j]).backward()
                opt.step()


def ensemble(seeds: int, d: int, steps: int, batch: int, generic: bool) -> None:
    ens = Ensemble.build(lambda g: parity_net(d, g), _gens(0, seeds))
    ens.force_vmap = generic
    data = _gens(1, seeds)
    v = torch.stack([sample_secret(d, g) for g in data])
    opt = SGD(0.01)
    for start in range(0, steps, CHUNK):
        x = torch.stack([sample_inputs((CHUNK, batch), d, g) for g in data], 1)
        y = parity_labels(x, v[None, :, None, :])
        for j in range(min(CHUNK, steps - start)):
            ens.step(opt, hinge, x[j], y[j], stacked=not generic)


def timed(fn, *args) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--dims", type=str, default="5,10,30", help="comma-separated d values")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("GRADPROBE_THREADS", "1")))
    dims = [int(v) for v in a.dims.split(",")]
    cmd = "OMP_WAIT_POLICY=PASSIVE .venv/bin/python " + " ".join(sys.argv)
    print(f"command: {cmd}")
    print(f"{a.seeds} seeds × {a.steps} steps, batch {a.batch}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}; CPU seconds "
          "(process time), wall in brackets")
    print(f"{'d':>4}{'sequential':>18}{'ensemble (fast)':>20}{'ensemble (vmap)':>20}"
          f"{'speed-up fast':>15}{'speed-up vmap':>15}")
    for d in dims:
        ensemble(2, d, 50, a.batch, False)  # warm-up (allocator, vmap tracing)
        ensemble(2, d, 50, a.batch, True)
        sequential(2, d, 50, a.batch)
        seq = timed(sequential, a.seeds, d, a.steps, a.batch)
        fast = timed(ensemble, a.seeds, d, a.steps, a.batch, False)
        gen = timed(ensemble, a.seeds, d, a.steps, a.batch, True)
        cell = lambda t: f"{t[1]:.2f} s ({t[0]:.1f})"  # noqa: E731
        print(f"{d:>4}{cell(seq):>18}{cell(fast):>20}{cell(gen):>20}"
              f"{seq[1] / fast[1]:>14.1f}×{seq[1] / gen[1]:>14.1f}×", flush=True)


if __name__ == "__main__":
    main()
