"""``hpc bench``: measure hpc against this machine's ceilings and against its peers.

``hpc bench [roofline|kernels|iter|mpi|cuda] [--quick] [--json FILE] [--plot FILE]``; with no name, every suite
that exists runs. Each suite is a module ``hpc.bench.<name>`` with ``run(quick) -> dict`` and
``format_table(results) -> str``; ``run`` returns ``None`` on MPI ranks that do not report, and a suite may define
``unavailable() -> str | None`` to say why it cannot run here.
"""

from __future__ import annotations

import argparse as _argparse
import importlib as _importlib
import json as _json
import sys as _sys
from typing import Any as _Any

__all__ = ["SUITES", "main"]

#: every suite name the command accepts, and the module that implements it (``None``: not built yet)
SUITES: dict[str, str | None] = {
    "roofline": "hpc.bench.roofline",
    "kernels": "hpc.bench.kernels",
    "iter": "hpc.bench.iter",
    "mpi": "hpc.bench.mpi",
    "cuda": "hpc.cuda.bench",
}

#: the size factor of the hidden ``--tiny`` flag (for tests: every suite in a few seconds)
TINY_SCALE = 0.01


def main(argv: list[str] | None = None) -> int:
    """Run ``hpc bench`` and return its exit status.

    Args:
        argv (list[str] or None): the arguments after ``hpc bench``; ``None`` reads ``sys.argv[1:]``.

    Returns:
        0 when every suite asked for ran; 2 for a suite that is not built yet or a usage error.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors; the caller wants a status
        return int(exc.code or 0)
    if args.name is not None and SUITES[args.name] is None:
        print(f"hpc bench {args.name}: not built yet", file=_sys.stderr)
        return 2
    names = [args.name] if args.name else [name for name, module in SUITES.items() if module]
    if args.plot:
        try:
            _importlib.import_module("matplotlib")
        except ImportError:
            print("hpc bench: --plot needs matplotlib; install it with: pip install matplotlib", file=_sys.stderr)
            return 2
    all_results: dict[str, _Any] = {}
    for name in names:
        suite = _importlib.import_module(SUITES[name])
        missing = getattr(suite, "unavailable", lambda: None)()  # e.g. mpi without mpiexec: say so, no traceback
        if missing:
            print(f"hpc bench {name}: {missing}", file=_sys.stderr)
            if args.name:
                return 2
            continue
        kwargs: dict[str, _Any] = {"log": _progress(name)}
        if args.tiny:
            kwargs.update(scale=TINY_SCALE, install_missing=False)
        results = suite.run(args.quick, **kwargs)
        if results is None:  # an MPI rank other than 0 (a suite run under mpiexec): rank 0 reports for the job
            continue
        all_results[name] = results
        print(suite.format_table(results), flush=True)
    if args.json and all_results:
        with open(args.json, "w", encoding="utf-8") as f:
            _json.dump(all_results, f, indent=2)
            f.write("\n")
    if args.plot:
        suite = _importlib.import_module(SUITES[args.name]) if args.name else None
        if suite is not None and hasattr(suite, "plot") and args.name in all_results:
            suite.plot(all_results[args.name], args.plot)  # a suite's own chart (kernels: the roofline)
        else:
            from hpc.bench import _plot

            _plot.save(all_results, args.plot)
    return 0


def _parser() -> _argparse.ArgumentParser:
    parser = _argparse.ArgumentParser(
        prog="hpc bench", description="Measure hpc against this machine's ceilings and against its peers."
    )
    parser.add_argument("name", nargs="?", choices=list(SUITES), help="the suite to run (default: every built one)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and one repeat: about a minute a suite")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers, with machine info, as JSON")
    parser.add_argument("--plot", metavar="FILE", help="also draw the timings (needs matplotlib)")
    parser.add_argument("--tiny", action="store_true", help=_argparse.SUPPRESS)  # tests: tiny sizes, no installs
    return parser


def _progress(name: str) -> _Any:
    def log(line: str) -> None:
        print(f"hpc bench {name}: {line}", file=_sys.stderr, flush=True)

    return log
