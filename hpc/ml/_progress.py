"""Progress of an iterative fit on rank 0: iteration, objective and time; a tqdm bar on a terminal, lines elsewhere."""

from __future__ import annotations

import sys as _sys
import time as _time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """Report each iteration of a fit when ``verbose`` is set, on rank 0 only (the other ranks stay quiet).

    On a terminal the report is a tqdm bar over ``max_iter`` with the objective beside it; in a log (no terminal,
    or ``verbose >= 2``) it is one line per iteration, as scikit-learn's ``verbose`` prints.
    """

    def __init__(self, what: str, max_iter: int, verbose: Any, rank: int) -> None:
        self.what = what
        self.on = bool(verbose) and rank == 0
        self.started = _time.perf_counter()
        self._bar = None
        if self.on and int(verbose) < 2 and _sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=max_iter, desc=what, unit="it", leave=True)

    def step(self, iteration: int, objective: float) -> None:
        """Report that ``iteration`` (from 0) ended with ``objective``."""
        if not self.on:
            return
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(objective=f"{objective:.6g}")
        else:
            print(f"{self.what}: iteration {iteration}, objective {objective:.10g}, "
                  f"{_time.perf_counter() - self.started:.2f} s", flush=True)

    def note(self, text: str) -> None:
        """Report a line (an initialization done, a convergence reached)."""
        if not self.on:
            return
        line = f"{self.what}: {text} ({_time.perf_counter() - self.started:.2f} s)"
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        """End the bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
