"""The ``hpc`` command line: ``hpc info`` and ``hpc bench``."""

from __future__ import annotations

import argparse as _argparse
import importlib as _importlib
import json as _json
import os as _os
import sys as _sys
from collections.abc import Sequence as _Sequence
from typing import Any as _Any

from hpc import _launcher
from hpc import config as _config

__all__ = ["main"]


def main(argv: _Sequence[str] | None = None) -> int:
    """Run the ``hpc`` command line and return its exit status.

    Args:
        argv (list[str] or None): the arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        0 on success, 2 on a usage or configuration error (printed as ``hpc: error: ...``, never a traceback),
        130 after Ctrl-C; ``hpc bench``'s own statuses otherwise (:func:`hpc.bench.main`).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return _info(as_json=args.json)
        if args.command == "bench":
            return _bench(args.args)
    except BrokenPipeError:  # the reader went away (`hpc info | head -1`): what it read is all it wanted
        # Python would report the pipe again when it flushes stdout at exit: point stdout at nothing first
        _os.dup2(_os.open(_os.devnull, _os.O_WRONLY), _sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback (hpc bench writes what finished first)
        print("hpc: interrupted", file=_sys.stderr)
        return 130
    parser.print_help(_sys.stderr)
    return 2


def _build_parser() -> _argparse.ArgumentParser:
    parser = _argparse.ArgumentParser(prog="hpc", description="hpc: a Python HPC compute substrate.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser(
        "info",
        help="report cores, SIMD ISA, caches, numba threading layer, MPI library and launcher, GPUs",
        description="Report this machine. Under mpiexec rank 0 prints one report gathered from all ranks.",
    )
    info.add_argument("--json", action="store_true", help="print JSON (a list of per-rank reports under MPI)")
    bench = commands.add_parser(
        "bench", help="measure hpc against this machine's ceilings", add_help=False, prefix_chars="\0"
    )
    bench.add_argument("args", nargs=_argparse.REMAINDER, help="arguments for hpc.bench")
    return parser


def _error(message: str) -> int:
    print(f"hpc: error: {message}", file=_sys.stderr)
    return 2


def _info(as_json: bool) -> int:
    from hpc import info as _infomod

    try:
        _config.snapshot()
        problem = None
    except _config.ConfigError as exc:
        problem = str(exc)
    comm = _infomod.world_comm()
    if comm is not None and comm.Get_size() > 1:
        # Every rank learns whether any rank failed, so no rank waits in a gather that others skip.
        problems = comm.allgather(problem)
        if any(problems):
            if comm.Get_rank() == 0:
                for message in dict.fromkeys(p for p in problems if p):
                    _error(message)
            return 2
        reports = _infomod.gather_reports(_infomod.collect(), comm)
    elif problem is not None:
        return _error(problem)
    else:
        reports = [_infomod.collect()]
    if reports is None:  # not the root rank: rank 0 prints for everyone
        return 0
    # under a launcher a list of per-rank reports, of one rank too (`mpiexec -n 1`): one shape for any rank count
    payload: _Any = reports if len(reports) > 1 or (comm is not None and _launcher.in_job()) else reports[0]
    print(_json.dumps(payload, indent=2) if as_json else _infomod.format_report(reports))
    return 0


def _bench(argv: list[str]) -> int:
    # hpc.bench.main checks the HPC_* values after its arguments (so `hpc bench --help` works with a bad one),
    # before any benchmark starts
    bench = _importlib.import_module("hpc.bench")
    return int(bench.main(argv) or 0)
