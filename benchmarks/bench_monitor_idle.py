"""BERT config of bench_monitor.py: plain training against a monitor that never probes
(every=10⁹: only its hooks' flag tests) and one with every=16, interleaved, process CPU time.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_monitor_idle.py
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

import gradprobe as gp  # noqa: E402
from bench_monitor import bert_problem  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    m0, loss, x, y = bert_problem(torch.Generator().manual_seed(0))
    ms = {k: copy.deepcopy(m0) for k in ("plain", "never", "every=16")}
    gp.GradientMonitor(ms["never"], every=10**9)
    gp.GradientMonitor(ms["every=16"], every=16)
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-4) for k, m in ms.items()}

    def run(k: str, n: int) -> float:
        m, opt = ms[k], opts[k]
        c = time.process_time()
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            loss(m(**x), y).backward()
            opt.step()
        return time.process_time() - c

    for k in ms:
        run(k, 17)
    res: dict[str, list[float]] = {k: [] for k in ms}
    for _ in range(3):
        for k in ms:
            res[k].append(run(k, 16))
    for k in ms:
        print(k, round(statistics.median(a / b for a, b in zip(res[k], res["plain"],
                                                               strict=True)), 3))


if __name__ == "__main__":
    main()
