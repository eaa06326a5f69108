"""Line images per second: the vectorised generator vs per-pixel Python loops (SPEC A4).

All three draw the same lines from the same parameters, pixel for pixel (checked here and in
tests/test_tasks_lines.py). Baselines: the authors' style (one line, one point at a time, each
point a small numpy array: `pt = (centre + t·u).astype(int)`, bounds checked with numpy), and a
tighter pure-Python loop (`draw_lines_reference`, floats and lists only). Interleaved rounds,
median, one thread, CPU process time. Run:
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_lines.py [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradprobe.tasks.lines import draw_lines, draw_lines_reference, sample_params  # noqa: E402


def draw_lines_numpy_loop(p) -> torch.Tensor:
    """The authors' way: a Python loop over lines and points, numpy for each point."""
    from gradprobe.tasks.lines import POINTS, SIZE

    fracs = np.linspace(-0.5, 0.5, POINTS)
    theta, length = p.theta.cpu().numpy(), p.length.cpu().numpy()
    cx, cy = p.cx.cpu().numpy(), p.cy.cpu().numpy()
    out = np.zeros((len(theta), SIZE, SIZE), dtype=np.float32)
    for i in range(len(theta)):
        centre = np.array([cx[i] + 0.5, cy[i] + 0.5])
        d = np.array([length[i] * np.cos(theta[i]), -(length[i] * np.sin(theta[i]))])
        for f in fracs:
            pt = np.floor(centre + d * f).astype(np.int64)
            if np.all((pt >= 0) & (pt < SIZE)):
                out[i, pt[1], pt[0]] = 1.0
    return torch.from_numpy(out).unsqueeze(1)


def rate(fn, n: int, device: str, reps: int) -> float:
    """Images per second for fn(params of n lines), params drawn on `device`."""
    g = torch.Generator(device=device).manual_seed(0)
    p = sample_params(n, g)
    fn(p)  # warm-up
    # CPU: process time (the machine is shared, wall time counts other people's work); CUDA: wall
    clock = time.perf_counter if device == "cuda" else time.process_time
    if device == "cuda":
        torch.cuda.synchronize()
    t = clock()
    for _ in range(reps):
        fn(p)
    if device == "cuda":
        torch.cuda.synchronize()
    return n * reps / (clock() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    check = sample_params(200, g)
    ref = draw_lines_reference(check)
    assert torch.equal(draw_lines(check), ref) and torch.equal(draw_lines_numpy_loop(check), ref)
    fast_r, py_r, np_r = [], [], []
    for _ in range(args.rounds):  # interleaved
        fast_r.append(rate(draw_lines, 10000, args.device, 5))
        py_r.append(rate(draw_lines_reference, 1000, "cpu", 1))
        np_r.append(rate(draw_lines_numpy_loop, 300, "cpu", 1))
    fast, py, npl = (statistics.median(r) for r in (fast_r, py_r, np_r))
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, torch "
          f"{torch.__version__}, 1 thread, CPU process time, median of {args.rounds} rounds")
    print("| generator | images / s | vectorised speed-up |\n|---|---|---|")
    print(f"| per-point loop with numpy, the authors' style (CPU) | {npl:,.0f} | "
          f"{fast / npl:,.0f}× |")
    print(f"| per-point pure-Python loop, `draw_lines_reference` (CPU) | {py:,.0f} | "
          f"{fast / py:,.0f}× |")
    print(f"| vectorised `draw_lines` ({args.device}, batches of 10,000) | {fast:,.0f} | 1× |")


if __name__ == "__main__":
    main()
