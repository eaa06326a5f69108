"""Cost of one `gp.probe` call in training steps of the same model and batch, in one process.

The README's MLP (784-256-256-256-10, ReLU, batch 128, cross-entropy) and its sigmoid twin of
examples/diagnose_example.py. A training step is zero_grad + forward + backward + SGD step on the
same batch; both are timed in process CPU time (the machine is shared), medians over reps.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_probe.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import gradprobe as gp  # noqa: E402


def mlp(act: type[nn.Module]) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 256), act(), nn.Linear(256, 256), act(),
                         nn.Linear(256, 256), act(), nn.Linear(256, 10))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("GRADPROBE_THREADS", 1)))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(128, 784, generator=g), torch.randint(0, 10, (128,), generator=g)
    loss = nn.functional.cross_entropy
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    for act in (nn.ReLU, nn.Sigmoid):
        model = mlp(act)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        gp.probe(model, loss, (x, y))  # warm-up
        steps, probes = [], []
        for _ in range(args.reps):
            c = time.process_time()
            for _ in range(args.steps):
                opt.zero_grad(set_to_none=True)
                loss(model(x), y).backward()
                opt.step()
            steps.append((time.process_time() - c) / args.steps)
            c = time.process_time()
            gp.probe(model, loss, (x, y))
            probes.append(time.process_time() - c)
        st, pr = statistics.median(steps), statistics.median(probes)
        print(f"MLP {act.__name__:<8} step {1e3 * st:7.2f} ms   probe {1e3 * pr:8.1f} ms   "
              f"= {pr / st:6.1f} training steps", flush=True)


if __name__ == "__main__":
    main()
