"""The `gradprobe` command line (DESIGN.md, "Command line"). It only orchestrates experiments.

Exit codes: 0 finished; 1 a claim failed under --strict; 2 bad usage or input (one message,
nothing written); 3 the run itself failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

# Before torch is imported anywhere: OpenMP threads that spin while waiting make torch 5-100x
# slower on a shared 2-core CPU (see BENCHMARKS.md); passive waiting costs nothing measurable.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

EXIT_OK, EXIT_CLAIM_FAILED, EXIT_USAGE, EXIT_RUN_FAILED = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exits with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"gradprobe: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gradprobe", description=__doc__.splitlines()[0])
    from gradprobe import __version__

    p.add_argument("--version", action="version", version=f"gradprobe {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="experiments, one line each")

    r = sub.add_parser("run", help="run one experiment")
    r.add_argument("experiment")
    _common(r)
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field (VALUE parsed as JSON when it parses)")

    rp = sub.add_parser("reproduce", help="run every experiment and write report.md/.html")
    _common(rp, scales=("smoke", "quick", "paper"))
    rp.add_argument("--only", default=None, help="comma-separated experiment names")
    rp.add_argument("--backend", choices=("local", "ray", "slurm"), default="local")
    rp.add_argument("--workers", type=int, default=None,
                    help="parallel processes (default: number of CPU cores)")
    rp.add_argument("--address", default=None,
                    help="Ray head HOST:PORT (default: a local Ray); checked before any work")
    rp.add_argument("--slurm-partition", default=os.environ.get("GRADPROBE_SLURM_PARTITION"),
                    help="Slurm partition (default $GRADPROBE_SLURM_PARTITION or the cluster's)")
    rp.add_argument("--slurm-time", type=int, default=240, metavar="MINUTES",
                    help="time limit of each Slurm job (default 240)")
    rp.add_argument("--slurm-mem", type=int, default=8, metavar="GB",
                    help="memory of each Slurm job (default 8)")
    rp.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per Slurm job (default 0)")
    rp.add_argument("--slurm-cluster", choices=("slurm", "local"), default=None,
                    help="submitit cluster: slurm (default when sbatch exists) or local jobs")

    sw = sub.add_parser("sweep", help="one run per value of a config key; verdicts side by side")
    sw.add_argument("experiment")
    sw.add_argument("values", metavar="KEY=V1,V2,...", help="the key and the values to try")
    _common(sw)
    sw.add_argument("--workers", type=int, default=None, help="parallel processes (default 2)")

    s = sub.add_parser("show", help="the claims table of a finished run")
    s.add_argument("run_dir", type=Path)

    d = sub.add_parser("diagnose", help="probe your own model: FILE.py:FACTORY")
    try:
        from gradprobe import diagnose

        diagnose.add_arguments(d)
    except ImportError:
        d.add_argument("target")
    return p


def _common(p: argparse.ArgumentParser, scales: tuple[str, ...] = ("smoke", "quick", "paper")):
    p.add_argument("--scale", choices=scales, default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs"))
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--force", action="store_true", help="recompute even if a finished run exists")
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="exit 2 instead of waiting when another process computes the same run")
    p.add_argument("--strict", action="store_true", help="exit 1 when a claim does not hold")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads per process (default $GRADPROBE_THREADS or 1)")


def main(argv: list[str] | None = None) -> int:
    from gradprobe.errors import UsageError

    args = build_parser().parse_args(argv)
    try:
        from gradprobe.runtime import check_env

        check_env()
        _check_args(args)
        return _dispatch(args)
    except UsageError as e:
        print(f"gradprobe: error: {_one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # full disk, read-only mount, permissions: the machine, not the code
        where = f": {e.filename}" if e.filename else ""
        print(f"gradprobe: error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gradprobe: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


MAX_SEED = 2**63 - 1


def _check_args(args: argparse.Namespace) -> None:
    """Range checks argparse cannot express, and --out; UsageError before anything is written."""
    from gradprobe.errors import UsageError

    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed {_brief_int(seed)} is out of range; choose 0 to 2^63-1")
    for name in ("workers", "max_samples", "batch_size", "threads", "slurm_time", "slurm_mem"):
        value = getattr(args, name, None)
        if value is not None and not 1 <= value <= 10**9:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} {_brief_int(value)} is out of range; choose 1 to 10^9")
    gpus = getattr(args, "slurm_gpus", 0)
    if not 0 <= gpus <= 64:
        raise UsageError(f"--slurm-gpus {_brief_int(gpus)} is out of range; choose 0 to 64")
    if getattr(args, "out", None) is not None:
        check_out_dir(args.out)


def _brief_int(n: int) -> str:
    import math

    return str(n) if abs(n) < 10**15 else f"~10^{int(math.log10(abs(n)))}"


def check_out_dir(out: Path) -> None:
    """--out must be a directory, or creatable: no existing file on the way, names the file
    system accepts, and a writable nearest existing parent."""
    from gradprobe.errors import UsageError

    out = Path(out)
    for part in out.parts:  # before any stat: an over-long name makes stat itself fail
        if len(os.fsencode(part)) > 255:
            raise UsageError(f"--out: the name {part[:30]!r}… is {len(os.fsencode(part))} "
                             "bytes; file systems allow 255")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        where = f"--out {out}" if probe == out else f"--out {out}: {probe}"
        raise UsageError(f"{where} is an existing file, not a directory; choose a directory")
    try:
        name_max = os.pathconf(probe, "PC_NAME_MAX")
        path_max = os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in out.parts:
        if len(os.fsencode(part)) > name_max:
            raise UsageError(f"--out: the name {part[:30]!r}… is {len(os.fsencode(part))} "
                             f"bytes; this file system allows {name_max}")
    if len(os.fsencode(str(out.absolute()))) > path_max - 200:  # room for run files below
        raise UsageError(f"--out path is too long; keep it under {path_max - 200} bytes")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {probe} is not writable (read-only or no permission); "
                         "choose another --out")


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "error"


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        return _list()
    if args.command == "show":
        return _show(args.run_dir)
    if args.command == "diagnose":
        from gradprobe import diagnose

        return diagnose.run(args)
    from gradprobe.runtime import set_threads

    set_threads(args.threads)
    if args.threads is not None:
        os.environ["GRADPROBE_THREADS"] = str(args.threads)  # inherited by worker processes
    if args.command == "run":
        return _run(args)
    if args.command == "sweep":
        return _sweep(args)
    return _reproduce(args)


def _list() -> int:
    from gradprobe.experiments.registry import experiments

    exps = experiments()
    width = max((len(n) for n in exps), default=0)
    for name, exp in exps.items():
        print(f"{name:<{width}}  {exp.spec:<3}  {exp.title}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from gradprobe.config import parse_overrides
    from gradprobe.runs.store import execute, resolve

    overrides = parse_overrides(args.overrides)
    req = resolve(args.experiment, args.scale, args.seed, overrides, args.out, args.device)
    if overrides:
        for k in overrides:
            print(f"override: {k} = {getattr(req.config, k)!r}")
    summary = execute(req, force=args.force, wait=args.wait)
    _print_summary(summary, req.run_dir)
    return _exit_code([summary], args.strict)


def _sweep(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from gradprobe.errors import UsageError
    from gradprobe.runs.sweep import sweep

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    doc = sweep(args.experiment, args.values, args.scale, args.seed, args.out, args.device,
                args.force, args.workers)
    colour = {"holds": "green", "fails": "red", "inconclusive": "yellow"}
    table = Table(title=f"{doc['experiment']}: verdicts by {doc['key']}")
    table.add_column("claim")
    for v in doc["values"]:
        table.add_column(escape(f"{doc['key']}={v}"))
    for cid, vs in doc["verdicts"].items():
        table.add_row(escape(cid), *(f"[{colour.get(v, 'bright_black')}]{v}[/]" for v in vs))
    Console(width=160).print(table)
    print(f"sweep: {doc['path']}")
    return EXIT_RUN_FAILED if "failed" in doc["status"] else EXIT_OK


def _reproduce(args: argparse.Namespace) -> int:
    from gradprobe.errors import UsageError
    from gradprobe.experiments.registry import experiments
    from gradprobe.report.build import write_report
    from gradprobe.runs.backends import SlurmOptions, check_ray_address, run_all
    from gradprobe.runs.store import resolve

    names = list(experiments())
    if args.only is not None:
        given = [n.strip() for n in args.only.split(",") if n.strip()]
        if not given:
            raise UsageError("--only names no experiment; give comma-separated names "
                             "(see 'gradprobe list')")
        names = list(dict.fromkeys(given))  # each experiment once, in the order given
    # Validate every request (and the cluster address) before any work starts.
    reqs = [resolve(n, args.scale, args.seed, {}, args.out, args.device) for n in names]
    if args.address and args.backend != "ray":
        raise UsageError("--address is for --backend ray")
    if args.backend == "ray" and args.address:
        check_ray_address(args.address)
    slurm = SlurmOptions(partition=args.slurm_partition, time_min=args.slurm_time,
                         mem_gb=args.slurm_mem, gpus=args.slurm_gpus, cluster=args.slurm_cluster)
    summaries = run_all(reqs, backend=args.backend, workers=args.workers, address=args.address,
                        force=args.force, wait=args.wait, slurm=slurm)
    md, html = write_report(summaries, args.out, scale=args.scale)
    _print_claims_table(summaries)
    print(f"report: {md}\n        {html}")
    return _exit_code(summaries, args.strict)


def _show(run_dir: Path) -> int:
    from gradprobe.errors import UsageError
    from gradprobe.runs.context import StoreDamaged
    from gradprobe.runs.store import read_summary

    try:
        if not run_dir.is_dir():
            raise UsageError(f"{run_dir} is not a directory")
        summary = read_summary(run_dir)
    except (StoreDamaged, OSError) as e:
        raise UsageError(f"cannot show {run_dir}: {e}") from None
    if summary is None:
        raise UsageError(f"{run_dir} has no summary.json (not a finished run directory)")
    import contextlib
    import io

    buf = io.StringIO()
    try:  # render first: a summary with odd field types gives one line, not half a table
        with contextlib.redirect_stdout(buf):
            _print_summary(summary, run_dir)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise UsageError(f"cannot show {run_dir}: summary.json has a field of an unexpected "
                         f"type ({type(e).__name__}: {e})") from None
    sys.stdout.write(buf.getvalue())
    return EXIT_OK


def _exit_code(summaries: list[dict[str, Any]], strict: bool) -> int:
    if any(s.get("status") == "failed" for s in summaries):
        return EXIT_RUN_FAILED
    if strict and any(c.get("verdict", "holds" if c.get("holds") else "fails") != "holds"
                      for s in summaries for c in s.get("claims", [])):
        return EXIT_CLAIM_FAILED
    return EXIT_OK


def plain(value: Any, limit: int = 2000) -> str:
    """str(value) safe for a terminal: control characters (escape sequences, newlines, NUL)
    become spaces, and it is cut at `limit` characters. Summaries may come from anywhere."""
    import unicodedata

    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    status = plain(summary.get("status"))
    cached = " (cached)" if summary.get("cached") else ""
    elapsed = summary.get("elapsed_s", 0)
    elapsed = elapsed if isinstance(elapsed, int | float) else 0
    print(f"{plain(summary.get('experiment'), 80)} [{plain(summary.get('scale'), 20)}, seed "
          f"{plain(summary.get('seed'), 30)}]: {status}{cached} in {elapsed:.1f} s")
    if status == "failed":
        print(f"error: {plain(summary.get('error'))}\nlog: {plain(summary.get('log'))}",
              file=sys.stderr)
    reasons = summary.get("diverged")
    if status == "diverged" and reasons:
        text = "; ".join(map(str, reasons)) if isinstance(reasons, list) else reasons
        print(f"diverged: {plain(text, 300)}")
    _print_claims_table([summary])
    print(f"run directory: {plain(run_dir)}")


def _print_claims_table(summaries: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from gradprobe.report.claims_table import rows

    colour = {"holds": "green", "fails": "red", "inconclusive": "yellow",
              "not_applicable": "bright_black"}
    table = Table(show_lines=False)
    for col in ("experiment", "claim", "kind", "expected", "ours", "interval (n)", "verdict"):
        table.add_column(col, overflow="fold")
    from rich.text import Text

    for r in rows(summaries):  # Text, not markup: summaries may come from anywhere
        cells = (r.experiment, r.claim, r.kind, r.expected, r.ours[:80], r.interval)
        table.add_row(*(Text(plain(x, 400)) for x in cells),
                      Text(plain(r.verdict, 40), colour.get(r.verdict, "white")))
    Console(width=160).print(table)


if __name__ == "__main__":
    sys.exit(main())
