"""Execution backends for `reproduce`: local worker processes (default) or Ray tasks.

Every experiment runs in its own process with one torch thread (on a shared CPU, process
parallelism with 1 thread each beats intra-op threads; BENCHMARKS.md). Both backends call the
same picklable entry point, `store.run_by_name`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from gradprobe.errors import UsageError
from gradprobe.runs.store import RunRequest, run_by_name

# Longest first, so the slow experiments do not end up alone at the end (quick-scale CPU cost).
LONGEST_FIRST = ("end_to_end", "looks_linear", "convnet_shattering", "parity", "flat_activation",
                 "pwl", "linear_periodic", "noise_decomposition")


def run_all(reqs: list[RunRequest], backend: str = "local", workers: int | None = None,
            address: str | None = None, force: bool = False) -> list[dict[str, Any]]:
    """Run every request; returns summaries in the order of `reqs`, with a progress bar."""
    rank = {n: i for i, n in enumerate(LONGEST_FIRST)}
    order = sorted(range(len(reqs)),
                   key=lambda i: rank.get(reqs[i].experiment.name, len(rank)))
    jobs = [(i, _args(reqs[i], force)) for i in order]
    workers = workers or os.cpu_count() or 1
    if backend == "ray":
        stream = _ray(jobs, workers, address)
    elif workers == 1:
        stream = ((i, run_by_name(*a)) for i, a in jobs)
    else:
        stream = _processes(jobs, workers)
    results: dict[int, dict[str, Any]] = {}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task(f"reproduce ({backend}, {workers} workers)", total=len(jobs))
        for i, summary in stream:
            results[i] = summary
            claims = summary.get("claims", [])
            held = sum(c["holds"] for c in claims)
            cached = "  (cached)" if summary.get("cached") else ""
            bar.console.print(f"  {summary['experiment']:<20} {summary['status']:<9} "
                              f"{summary.get('elapsed_s', 0):7.1f} s   claims "
                              f"{held}/{len(claims)}{cached}")
            bar.advance(task)
    return [results[i] for i in range(len(reqs))]


def _args(req: RunRequest, force: bool) -> tuple:
    return (req.experiment.name, req.scale, req.seed,
            req.config.to_dict(),
            str(req.out), req.device.type, force, True)


def _processes(jobs: list[tuple[int, tuple]], workers: int) -> Iterator[tuple[int, dict]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    env_threads = os.environ.setdefault("GRADPROBE_THREADS", "1")
    del env_threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_by_name, *a): i for i, a in jobs}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _ray(jobs: list[tuple[int, tuple]], workers: int,
         address: str | None) -> Iterator[tuple[int, dict]]:
    try:
        import ray
    except ImportError as e:
        raise UsageError("--backend ray needs Ray: pip install 'gradprobe[ray]'") from e
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, log_to_driver=False, include_dashboard=False)
    task = ray.remote(num_cpus=1)(run_by_name)
    env = {"env_vars": {"GRADPROBE_THREADS": os.environ.get("GRADPROBE_THREADS", "1"),
                        "OMP_WAIT_POLICY": "PASSIVE"}}
    refs = {task.options(runtime_env=env).remote(*a): i for i, a in jobs}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield refs[done[0]], ray.get(done[0])
