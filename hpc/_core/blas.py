"""A process-wide, reference-counted cap on BLAS threads while parallel work runs on our threads."""

from __future__ import annotations

import contextlib as _contextlib
import os as _os
import sys as _sys
import threading as _threading
from collections.abc import Iterator
from typing import Any

from hpc import config as _config

__all__ = ["blas_cap", "blas_capped", "controllers"]


class _Controllers:
    """threadpoolctl's view of the native thread pools loaded in this process, looked at again when it may be stale.

    A ``ThreadpoolController`` knows the libraries loaded when it was made (a few ms to find them). A library loaded
    later (SciPy's own OpenBLAS, libgomp with scikit-learn) comes with an import, so a new controller is made when
    modules have been imported since the last one: a length check on ``sys.modules``, free on the hot path.
    """

    def __init__(self) -> None:
        self._lock = _threading.Lock()
        self._controller: Any = None
        self._modules = -1

    def current(self) -> Any:
        """Return a controller that knows every library loaded so far, or None where threadpoolctl is unusable."""
        if len(_sys.modules) == self._modules:  # nothing imported since: no lock on the per-batch path
            return self._controller
        with self._lock:
            if len(_sys.modules) != self._modules:
                try:
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                except Exception:  # threadpoolctl unusable here: callers run uncapped rather than fail
                    self._controller = None
                self._modules = len(_sys.modules)
            return self._controller

    def __repr__(self) -> str:
        return f"<hpc threadpool controllers {self._controller!r}>"


#: the process's one view of its native thread pools (BLAS, OpenMP), shared by every cap
controllers = _Controllers()


class _BlasCap:
    """The first user sets the cap, a user that asks for fewer threads lowers it, the last one lifts it; overlapping
    runs from several threads are safe.

    threadpoolctl's limits are process-wide (BLAS libraries offer no per-thread setting), so while any parallel run
    is active the whole process uses the capped BLAS thread count: the lowest any active run asked for (an hpc.ml fit,
    which wants one BLAS thread per worker, beside a smaller pool's run), kept until the last run ends. Lifting the
    cap gives a library back its former thread count only where it still has the count the cap set: where something
    else changed it meanwhile (a ``threadpool_limits`` block in another thread, which scikit-learn's KMeans opens,
    ending after the cap began), that later setting stays. Restoring every library regardless, as threadpoolctl's
    limiter does, left BLAS on one thread for the rest of the process after such an interleaving. A setting made
    meanwhile that equals the cap's cannot be told from it, and is undone with it (a ``threadpool_limits(1)`` block
    still open when a 2-thread pool's run ends runs on with BLAS's former count). A BLAS loaded while the cap holds
    (SciPy's, imported by a task) is capped by the next run that lowers the cap, else not in that run.
    """

    def __init__(self) -> None:
        self._lock = _threading.Lock()
        self._users = 0
        self._cap: int | None = None  # the count the active runs asked for, the lowest of them
        # by library path: [library controller, its count before, the count set]
        self._held: dict[str, list[Any]] = {}

    def acquire(self, pool_threads: int) -> None:
        with self._lock:
            self._users += 1
            if "numpy" not in _sys.modules:
                return  # no NumPy, no BLAS loaded through it: nothing to cap
            try:
                per_worker = max(1, _config.available_cpus() // pool_threads)
                if self._cap is not None and per_worker >= self._cap:
                    return  # capped as low already
                controller = controllers.current()
                libraries = [] if controller is None else controller.select(user_api="blas").lib_controllers
                for library in libraries:
                    count = library.num_threads
                    capped = min(count, per_worker)  # a cap never raises a count set lower
                    if capped != count:
                        library.set_num_threads(capped)
                        held = self._held.get(library.filepath)
                        if held is None:
                            self._held[library.filepath] = [library, count, capped]
                        else:  # lowered again: its count before the first cap is the one to give back
                            held[2] = capped
                self._cap = per_worker
            except Exception:  # threadpoolctl unusable here: run uncapped rather than fail the call
                pass

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._lift()

    def _lift(self) -> None:
        held, self._held, self._cap = self._held, {}, None
        for library, before, capped in held.values():
            try:
                if library.num_threads == capped:
                    library.set_num_threads(before)
            except Exception:  # threadpoolctl unusable: BLAS stays capped, which is safe
                pass

    def _reset_after_fork(self) -> None:
        """In a child made by ``os.fork``: no run is active there (the forking thread's, if any, is not), so the
        count starts at 0 and a cap the parent held is lifted; the lock, perhaps held by another parent thread at
        the fork, is new."""
        self._lock = _threading.Lock()
        self._users = 0
        self._lift()

    def __repr__(self) -> str:
        return f"<hpc BLAS cap users={self._users}>"


#: the one cap of this process (``acquire(pool_threads)`` / ``release()``, for callers that cannot use ``with``)
blas_cap = _BlasCap()


def _after_fork_in_child() -> None:
    controllers._lock = _threading.Lock()
    blas_cap._reset_after_fork()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)


@_contextlib.contextmanager
def blas_capped(pool_threads: int) -> Iterator[None]:
    """Cap BLAS at ``cpus // pool_threads`` threads (or fewer, where it had fewer) for the duration of the block
    (no-op for a 1-thread pool).

    BLAS threads inside each of ``pool_threads`` workers would otherwise multiply with the pool and oversubscribe.
    Every BLAS loaded by then is capped (see :class:`_Controllers`).
    """
    if pool_threads <= 1:
        yield
        return
    blas_cap.acquire(pool_threads)
    try:
        yield
    finally:
        blas_cap.release()
