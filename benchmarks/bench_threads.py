"""Torch intra-op threads on a shared CPU: 1 vs 2 threads for small-model training steps.

Times the same SGD step (an MLP like SPEC A1's, and a small CNN like A4's N1) with
torch.set_num_threads(1) and (2), interleaved in one process, and prints the ratio. This is what
gradprobe.runtime.DEFAULT_THREADS is chosen from. Run:
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_threads.py
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from torch import nn  # noqa: E402


def step_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threads: int, reps: int) -> float:
    torch.set_num_threads(threads)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    t = time.perf_counter()
    for _ in range(reps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - t) / reps


def main() -> None:
    torch.manual_seed(0)
    cases = {
        "mlp 30-300-1, batch 128": (nn.Sequential(nn.Linear(30, 300), nn.ReLU(), nn.Linear(300, 1)),
                                    torch.randn(128, 30), torch.randn(128, 1), 400),
        "cnn N1-like, batch 200": (nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.MaxPool2d(2),
                                                 nn.Conv2d(16, 16, 5, padding=2), nn.MaxPool2d(2),
                                                 nn.Flatten(), nn.Linear(784, 50), nn.ReLU(),
                                                 nn.Linear(50, 1)),
                                   torch.randn(200, 1, 28, 28), torch.randn(200, 1), 15),
    }
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for name, (model, x, y, reps) in cases.items():
        t1, t2 = [], []
        for _ in range(5):  # interleaved rounds
            t1.append(step_time(model, x, y, 1, reps))
            t2.append(step_time(model, x, y, 2, reps))
        m1, m2 = statistics.median(t1), statistics.median(t2)
        print(f"{name}: 1 thread {m1 * 1e3:.2f} ms/step, 2 threads {m2 * 1e3:.2f} ms/step, "
              f"2-thread/1-thread time ratio {m2 / m1:.2f}")


if __name__ == "__main__":
    main()
