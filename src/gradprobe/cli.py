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
    rp.add_argument("--backend", choices=("local", "ray"), default="local")
    rp.add_argument("--workers", type=int, default=None,
                    help="parallel processes (default: number of CPU cores)")
    rp.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")

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
    p.add_argument("--strict", action="store_true", help="exit 1 when a claim does not hold")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads per process (default $GRADPROBE_THREADS or 1)")


def main(argv: list[str] | None = None) -> int:
    from gradprobe.errors import UsageError

    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UsageError as e:
        print(f"gradprobe: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gradprobe: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


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
    from gradprobe.config import parse_override
    from gradprobe.runs.store import execute, resolve

    overrides = dict(parse_override(o) for o in args.overrides)
    req = resolve(args.experiment, args.scale, args.seed, overrides, args.out, args.device)
    if overrides:
        for k in overrides:
            print(f"override: {k} = {getattr(req.config, k)!r}")
    summary = execute(req, force=args.force)
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
    from gradprobe.experiments.registry import experiments
    from gradprobe.report.build import write_report
    from gradprobe.runs.backends import run_all
    from gradprobe.runs.store import resolve

    names = list(experiments())
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
    # Validate every request before any work starts.
    reqs = [resolve(n, args.scale, args.seed, {}, args.out, args.device) for n in names]
    if args.workers is not None and args.workers < 1:
        from gradprobe.errors import UsageError

        raise UsageError("--workers must be at least 1")
    summaries = run_all(reqs, backend=args.backend, workers=args.workers, address=args.address,
                        force=args.force)
    md, html = write_report(summaries, args.out, scale=args.scale)
    _print_claims_table(summaries)
    print(f"report: {md}\n        {html}")
    return _exit_code(summaries, args.strict)


def _show(run_dir: Path) -> int:
    from gradprobe.errors import UsageError
    from gradprobe.runs.store import load_summary

    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a directory")
    summary = load_summary(run_dir)
    if summary is None:
        raise UsageError(f"{run_dir} has no summary.json (not a finished run directory)")
    _print_summary(summary, run_dir)
    return EXIT_OK


def _exit_code(summaries: list[dict[str, Any]], strict: bool) -> int:
    if any(s.get("status") == "failed" for s in summaries):
        return EXIT_RUN_FAILED
    if strict and any(c.get("verdict", "holds" if c.get("holds") else "fails") != "holds"
                      for s in summaries for c in s.get("claims", [])):
        return EXIT_CLAIM_FAILED
    return EXIT_OK


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    status = summary.get("status")
    cached = " (cached)" if summary.get("cached") else ""
    print(f"{summary['experiment']} [{summary.get('scale')}, seed {summary.get('seed')}]: "
          f"{status}{cached} in {summary.get('elapsed_s', 0):.1f} s")
    if status == "failed":
        print(f"error: {summary.get('error')}\nlog: {summary.get('log')}", file=sys.stderr)
    _print_claims_table([summary])
    print(f"run directory: {run_dir}")


def _print_claims_table(summaries: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from gradprobe.report.claims_table import rows

    colour = {"holds": "green", "fails": "red", "inconclusive": "yellow",
              "not_applicable": "bright_black"}
    table = Table(show_lines=False)
    for col in ("experiment", "claim", "kind", "expected", "ours", "interval (n)", "verdict"):
        table.add_column(col, overflow="fold")
    for r in rows(summaries):
        table.add_row(r.experiment, r.claim, r.kind, r.expected, r.ours[:80], r.interval,
                      f"[{colour.get(r.verdict, 'white')}]{r.verdict}[/]")
    Console(width=160).print(table)


if __name__ == "__main__":
    sys.exit(main())
