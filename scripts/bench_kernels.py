"""Run ``hpc bench kernels`` (with its roofline) from a checkout: ``python scripts/bench_kernels.py [--quick]``."""

from __future__ import annotations

import argparse as _argparse
import sys as _sys

from hpc.bench import kernels as _kernels


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the kernels benchmark (it measures the roofline first) and print its table."""
    parser = _argparse.ArgumentParser(description="hpc.kernels against NumPy and the measured roofline.")
    parser.add_argument("--quick", action="store_true", help="64 MiB arrays, 3 repeats: about a minute")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    parser.add_argument("--plot", metavar="FILE", help="also draw the roofline chart (needs matplotlib)")
    parser.add_argument("--scale", type=float, default=1.0, help=_argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        result = _kernels.run(
            args.quick,
            scale=args.scale,
            json=args.json,
            plot=args.plot,
            log=lambda line: print(f"bench kernels: {line}", file=_sys.stderr, flush=True),
        )
    except ValueError as exc:  # an output path that cannot be written, found before the run
        parser.error(str(exc))
    print(_kernels.format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
