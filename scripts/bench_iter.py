"""Benchmark hpc's parallel iterators against serial Python, multiprocessing, joblib and mpire.

Usage: python scripts/bench_iter.py [--quick] [--json FILE] [--plot FILE]   (the same as ``hpc bench iter``)
"""

from __future__ import annotations

import sys

from hpc.bench import main

if __name__ == "__main__":
    sys.exit(main(["iter", *sys.argv[1:]]))
