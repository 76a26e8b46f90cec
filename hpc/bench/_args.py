"""Argument types for the benchmark scripts' command lines (``scripts/bench_*.py``, the example jobs): a bad count
is a one-line usage error from argparse, before any work (or any MPI collective, where one rank alone would fail
and leave the others waiting)."""

from __future__ import annotations

import argparse as _argparse

__all__ = ["float64_bytes", "positive_float", "positive_int", "writable_path"]


def positive_int(text: str) -> int:
    """argparse ``type=``: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise _argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}") from None
    if value < 1:
        raise _argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}")
    return value


def float64_bytes(text: str) -> int:
    """argparse ``type=``: a message size in bytes, at least one float64 (8)."""
    value = positive_int(text)
    if value < 8:
        raise _argparse.ArgumentTypeError(f"expected at least 8 bytes (one float64); got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise _argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}") from None
    if not 0 < value < float("inf"):
        raise _argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


def writable_path(text: str) -> str:
    """argparse ``type=``: a file path that can be written (checked now, not after the run)."""
    from hpc.bench import _output

    problem = _output.unwritable(text)
    if problem:
        raise _argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text
