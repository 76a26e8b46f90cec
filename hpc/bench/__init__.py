"""``hpc bench``: measure hpc against this machine's ceilings and against its peers.

``hpc bench [roofline|kernels|iter|mpi|cuda|ml] [--quick] [--json FILE] [--plot FILE]``; with no name, every suite
that exists runs. Each suite is a module ``hpc.bench.<name>`` with ``run(quick) -> dict`` and
``format_table(results) -> str``; ``run`` returns ``None`` on MPI ranks that do not report, and a suite may define
``unavailable() -> str | None`` to say why it cannot run here.
"""

from __future__ import annotations

import argparse as _argparse
import importlib as _importlib
import os as _os
import sys as _sys
from typing import Any as _Any

from hpc.bench import _output

__all__ = ["SUITES", "main"]

#: every suite name the command accepts, and the module that implements it (``None``: not built yet)
SUITES: dict[str, str | None] = {
    "roofline": "hpc.bench.roofline",
    "kernels": "hpc.bench.kernels",
    "iter": "hpc.bench.iter",
    "mpi": "hpc.bench.mpi",
    "cuda": "hpc.cuda.bench",
    "ml": "hpc.bench.ml",
}

#: what each suite measures, for ``--help`` (docs/performance.md has the method and the current figures of each)
SUMMARIES: dict[str, str] = {
    "roofline": "the machine's ceilings: memory triad and read bandwidth, BLAS dgemm GFLOP/s",
    "kernels": "every hpc.kernels kernel against NumPy, large and in cache, as a fraction of the ceilings",
    "iter": "par_iter against multiprocessing, joblib/loky and mpire; scikit-learn with n_jobs on each backend",
    "mpi": "allreduce against raw mpi4py on 2 ranks, 8 B to 64 MiB; reproducible sums; fused reductions",
    "cuda": "transfers, device copies, the GPU twins, launch latency (a CPU fallback without a GPU)",
    "ml": "hpc.ml estimators against scikit-learn (and intelex, dask-ml where installed), and on 2 MPI ranks",
}

#: suites whose results ``--plot`` can draw: their own ``plot`` (kernels) or :mod:`hpc.bench._plot` (iter, mpi)
PLOTTABLE = ("kernels", "iter", "mpi")

#: the size factor of the hidden ``--tiny`` flag (for tests: every suite in a few seconds)
TINY_SCALE = 0.01


def main(argv: list[str] | None = None) -> int:
    """Run ``hpc bench`` and return its exit status.

    Args:
        argv (list[str] or None): the arguments after ``hpc bench``; ``None`` reads ``sys.argv[1:]``.

    Returns:
        0 when every suite asked for ran; 2 for a suite that is not built yet, a usage error, a bad ``HPC_*``
        value or an output path that cannot be written; 1 when a suite failed (the others still run) or the results
        could not be written or drawn; 130 after Ctrl-C. The suites that finished are written to ``--json`` in
        every case.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors; the caller wants a status
        return int(exc.code or 0)
    from hpc import config

    try:
        config.snapshot()  # python -m hpc.bench.mpi and scripts/bench_*.py come here without hpc.cli's check
    except config.ConfigError as exc:
        print(f"hpc bench: error: {exc}", file=_sys.stderr)
        return 2
    if args.name is not None and SUITES[args.name] is None:
        print(f"hpc bench {args.name}: not built yet", file=_sys.stderr)
        return 2
    names = [args.name] if args.name else [name for name, module in SUITES.items() if module]
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        problem = _output.unwritable(path) if path is not None else None
        if problem:  # say so now, not after minutes of benchmarks
            print(f"hpc bench: {flag} {path!r}: {problem}", file=_sys.stderr)
            return 2
    if args.plot and args.name and args.name not in PLOTTABLE:
        print(
            f"hpc bench {args.name}: --plot has no chart for this suite (charts: {', '.join(PLOTTABLE)})",
            file=_sys.stderr,
        )
        return 2
    if args.plot:
        try:
            _importlib.import_module("matplotlib")
        except ImportError:
            print("hpc bench: --plot needs matplotlib; install it with: pip install matplotlib", file=_sys.stderr)
            return 2
        problem = _output.unplottable(args.plot)
        if problem:
            print(f"hpc bench: --plot {args.plot}: {problem}", file=_sys.stderr)
            return 2
    all_results: dict[str, _Any] = {}
    status = 0
    try:
        status = _run_suites(args, names, all_results)
    except KeyboardInterrupt:
        print("hpc bench: interrupted" + (f"; writing the {len(all_results)} suite(s) that finished"
                                          if args.json and all_results else ""), file=_sys.stderr)
        status = 130
    try:
        if args.json and all_results:
            _output.write_json(args.json, all_results)
        if args.plot and all_results and status != 130:
            suite = _importlib.import_module(SUITES[args.name]) if args.name else None
            if suite is not None and hasattr(suite, "plot"):
                suite.plot(all_results[args.name], args.plot)  # a suite's own chart (kernels: the roofline)
            else:
                from hpc.bench import _plot

                if not _plot.save(all_results, args.plot):
                    print(f"hpc bench: --plot {args.plot}: nothing to draw; no file written", file=_sys.stderr)
                    return 1
    except OSError as exc:
        print(f"hpc bench: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=_sys.stderr)
        return 1
    return status


def _run_suites(args: _argparse.Namespace, names: list[str], all_results: dict[str, _Any]) -> int:
    """Run the suites ``names`` in turn into ``all_results``; return 0, 1 when one failed, or 2 for a usage error.

    A suite that fails (an exception: an MPI job that died) prints one line and the next one runs. A reader that
    went away (``| head``) stops the tables, not the run: the JSON still gets every suite.
    """
    status = 0
    for name in names:
        suite = _importlib.import_module(SUITES[name])
        missing = getattr(suite, "unavailable", lambda: None)()  # e.g. mpi without mpiexec: say so, no traceback
        if missing:
            print(f"hpc bench {name}: {missing}", file=_sys.stderr)
            if args.name:
                return 2
            continue
        kwargs: dict[str, _Any] = {"log": _progress(name)}
        if args.hosts is not None:
            if name != "mpi":
                print(f"hpc bench {name}: --hosts is for the mpi suite only", file=_sys.stderr)
                return 2
            if args.hosts != 2:
                print(f"hpc bench mpi: --hosts must be 2 (one rank on each of two test hosts); got {args.hosts}",
                      file=_sys.stderr)
                return 2
            kwargs["hosts"] = args.hosts
        if args.tiny:
            kwargs.update(scale=TINY_SCALE)
        try:
            results = suite.run(args.quick, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one line per failed suite; the others still run
            print(f"hpc bench {name}: failed: {type(exc).__name__}: {exc}", file=_sys.stderr)
            status = 1
            continue
        if results is None:  # an MPI rank other than 0 (a suite run under mpiexec): rank 0 reports for the job
            continue
        if isinstance(results, dict) and "machine" not in results:  # every suite's JSON says where it ran
            from hpc.bench._machine import describe

            results["machine"] = describe()
        all_results[name] = results
        try:
            print(suite.format_table(results), flush=True)
        except BrokenPipeError:  # the reader went away: later tables go nowhere, the run and its JSON go on
            _os.dup2(_os.open(_os.devnull, _os.O_WRONLY), _sys.stdout.fileno())
    return status


def _parser() -> _argparse.ArgumentParser:
    parser = _argparse.ArgumentParser(
        prog="hpc bench",
        description="Measure hpc against this machine's ceilings and against its peers.",
        epilog="suites:\n" + "\n".join(f"  {name:<9} {SUMMARIES[name]}" for name in SUITES)
        + "\n\nA target line that misses is reported and does not change the exit status.",
        formatter_class=_argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", choices=list(SUITES), help="the suite to run (default: every built one)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (each suite's time: "
                        "docs/performance.md, 'Running the suites')")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers, with machine info, as JSON")
    parser.add_argument("--plot", metavar="FILE", help="also draw the timings (needs matplotlib)")
    parser.add_argument("--hosts", type=int, metavar="N", help="mpi: run the 2 ranks on N=2 test hosts of the "
                        "multi-host harness (scripts/multihost.sh: root, ip netns, a source checkout)")
    parser.add_argument("--tiny", action="store_true", help=_argparse.SUPPRESS)  # tests: tiny sizes, no installs
    return parser


def _progress(name: str) -> _Any:
    def log(line: str) -> None:
        print(f"hpc bench {name}: {line}", file=_sys.stderr, flush=True)

    return log
