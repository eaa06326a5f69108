"""Execution backends for `reproduce`: local worker processes (default), Ray tasks or Slurm
jobs (through submitit).

Every experiment runs in its own process with one torch thread (on a shared CPU, process
parallelism with 1 thread each beats intra-op threads; BENCHMARKS.md). Every backend calls the
same picklable entry point, `store.run_by_name`; the run directory's lock and validated files
make a retried or duplicated job safe. Local workers die with the parent (PR_SET_PDEATHSIG, and
a watchdog on the parent pid elsewhere), so a kill -9 of `reproduce` leaves no orphans.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradprobe.errors import UsageError
from gradprobe.runs.store import RunRequest, run_by_name

# Longest first, so the slow experiments do not end up alone at the end (quick-scale CPU cost).
LONGEST_FIRST = ("end_to_end", "remedies", "looks_linear", "parity", "pwl", "snr",
                 "linear_periodic", "flat_activation", "signal_propagation", "convnet_shattering",
                 "noise_decomposition", "shattered_theory", "tuple_variance")


JOB_ENV = ("GRADPROBE_THREADS", "GRADPROBE_CHECKPOINT_EVERY", "GRADPROBE_DATA", "OMP_WAIT_POLICY")
RAY_CONNECT_TIMEOUT_S = 10.0
RAY_MAX_RETRIES = 3  # a worker killed mid-task is retried; the task resumes from checkpoints


@dataclass(frozen=True)
class SlurmOptions:
    """Where and how `--backend slurm` submits (submitit's AutoExecutor parameters)."""

    partition: str | None = None
    time_min: int = 240
    cpus: int = 1
    mem_gb: int = 8
    gpus: int = 0
    cluster: str | None = None  # None: Slurm when sbatch is found; "local": submitit local jobs
    folder: Path | None = None  # job logs; default <out>/.slurm


def run_all(reqs: list[RunRequest], backend: str = "local", workers: int | None = None,
            address: str | None = None, force: bool = False, wait: bool = True,
            slurm: SlurmOptions | None = None) -> list[dict[str, Any]]:
    """Run every request; returns summaries in the order of `reqs`, with a progress bar."""
    rank = {n: i for i, n in enumerate(LONGEST_FIRST)}
    order = sorted(range(len(reqs)),
                   key=lambda i: rank.get(reqs[i].experiment.name, len(rank)))
    jobs = [(i, _args(reqs[i], force, wait)) for i in order]
    workers = workers or os.cpu_count() or 1
    if backend == "ray":
        stream = _ray(jobs, workers, address)
    elif backend == "slurm":
        out = reqs[0].out if reqs else Path(".")
        stream = _slurm(jobs, slurm or SlurmOptions(), out)
    elif workers == 1:
        stream = ((i, _outcome(lambda a=a: run_by_name(*a))) for i, a in jobs)
    else:
        stream = _processes(jobs, workers)
    results: dict[int, dict[str, Any]] = {}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task(f"reproduce ({backend}, {workers} workers)", total=len(jobs))
        for i, outcome in stream:
            if isinstance(outcome, UsageError):
                raise outcome
            summary = outcome if isinstance(outcome, dict) else _lost(reqs[i], outcome)
            results[i] = summary
            claims = summary.get("claims", [])
            held = sum(c["holds"] for c in claims)
            cached = "  (cached)" if summary.get("cached") else ""
            bar.console.print(f"  {summary['experiment']:<20} {summary['status']:<9} "
                              f"{summary.get('elapsed_s', 0):7.1f} s   claims "
                              f"{held}/{len(claims)}{cached}")
            bar.advance(task)
    return [results[i] for i in range(len(reqs))]


def _lost(req: RunRequest, exc: BaseException) -> dict[str, Any]:
    """The summary of a job whose worker, task or Slurm job died without returning one: failed,
    and resumable by running the same command again."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return {"experiment": req.experiment.name, "run_id": req.run_id, "scale": req.scale,
            "seed": req.seed, "status": "failed", "results": {}, "claims": [],
            "error": f"{type(exc).__name__}: {first} (the worker died; run the same command "
                     "again to resume)", "log": str(req.run_dir / "run.log"), "elapsed_s": 0.0,
            "device": req.device.type}


def _outcome(get: Any) -> dict[str, Any] | BaseException:
    """get()'s summary, or the exception it raised (a dead worker must not sink the report)."""
    try:
        return get()
    except Exception as exc:
        return exc


def _args(req: RunRequest, force: bool, wait: bool) -> tuple:
    return (req.experiment.name, req.scale, req.seed,
            req.config.to_dict(),
            str(req.out), req.device.type, force, True, wait)


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this process when `parent_pid` dies (kill -9 included).
    Linux: PR_SET_PDEATHSIG; everywhere: a daemon thread that polls the parent pid."""
    import signal

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="gradprobe-parent-watch").start()


def _processes(jobs: list[tuple[int, tuple]], workers: int) -> Iterator[tuple[int, dict]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    os.environ.setdefault("GRADPROBE_THREADS", "1")
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_by_name, *a): i for i, a in jobs}
        for fut in as_completed(futures):
            yield futures[fut], _outcome(fut.result)


def check_ray_address(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """UsageError (one line) unless a TCP connection to the Ray head at `address`
    (host:port or ray://host:port; "auto" is left to Ray) opens within timeout_s."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address[:80]!r} is not HOST:PORT (for example "
                         "10.0.0.5:6379, or ray://HOST:10001 for Ray Client)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as s:
            speaks_grpc = _answers_http2(s, timeout_s)
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise UsageError(f"cannot reach a Ray head at {address[:80]} ({why}); start one with "
                         "'ray start --head' or drop --address for a local Ray") from None
    if not speaks_grpc and os.environ.get("RAY_USE_TLS", "0") in ("0", ""):
        raise UsageError(f"{address[:80]} answers but is not a Ray head (no gRPC there); check "
                         "the host and port ('ray status' on the head prints them)")


def _answers_http2(sock: socket.socket, timeout_s: float) -> bool:
    """True when the peer answers an HTTP/2 connection preface with a SETTINGS frame, as every
    gRPC server (Ray's GCS and Ray Client server) does; ray.init would wait minutes instead."""
    sock.settimeout(timeout_s)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    head = b""
    try:
        while len(head) < 9:
            chunk = sock.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except TimeoutError:
        return False
    return head[3] == 0x04  # frame type SETTINGS


def _ray(jobs: list[tuple[int, tuple]], workers: int,
         address: str | None) -> Iterator[tuple[int, dict]]:
    try:
        import ray
    except ImportError as e:
        raise UsageError("--backend ray needs Ray: pip install 'gradprobe[ray]'") from e
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        if address:
            check_ray_address(address)
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                raise UsageError(f"cannot connect to Ray at {address[:80]}: {msg}") from None
        else:
            ray.init(num_cpus=workers, log_to_driver=False, include_dashboard=False)
    task = ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES)(run_by_name)
    env_vars = {k: os.environ[k] for k in JOB_ENV if k in os.environ}
    env = {"env_vars": {**env_vars, "GRADPROBE_THREADS": env_vars.get("GRADPROBE_THREADS", "1"),
                        "OMP_WAIT_POLICY": "PASSIVE"}}
    refs = {task.options(runtime_env=env).remote(*a): i for i, a in jobs}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield refs[done[0]], _outcome(lambda ref=done[0]: ray.get(ref))


def _slurm(jobs: list[tuple[int, tuple]], opts: SlurmOptions,
           out: Path) -> Iterator[tuple[int, dict]]:
    """One submitit job per experiment; yields summaries as jobs finish."""
    try:
        import submitit
    except ImportError as e:
        raise UsageError("--backend slurm needs submitit: pip install 'gradprobe[slurm]'") from e
    folder = opts.folder or Path(out) / ".slurm" / "%j"
    try:
        ex = submitit.AutoExecutor(folder=folder, cluster=opts.cluster)
    except RuntimeError as e:  # no sbatch on this machine and no cluster named
        raise UsageError(f"--backend slurm: {e}; run on a Slurm login node, or use "
                         "--slurm-cluster local to try it on this machine") from None
    ex.update_parameters(timeout_min=opts.time_min, cpus_per_task=opts.cpus, mem_gb=opts.mem_gb,
                         gpus_per_node=opts.gpus or None, name="gradprobe",
                         slurm_partition=opts.partition)
    env = {k: os.environ[k] for k in JOB_ENV if k in os.environ}
    env.setdefault("GRADPROBE_THREADS", "1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    running = {ex.submit(_with_env, env, a): i for i, a in jobs}
    while running:
        for job in [j for j in running if j.done()]:
            yield running.pop(job), _outcome(job.result)
        time.sleep(0.5)


def _with_env(env: dict[str, str], args: tuple) -> dict[str, Any]:
    """A Slurm job: take the submitting shell's GRADPROBE_* / OMP settings, then run."""
    os.environ.update(env)
    return run_by_name(*args)
