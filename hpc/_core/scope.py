"""A scope for spawning any number of tasks that all finish before it closes (Rayon's ``scope``)."""

from __future__ import annotations

import threading as _threading
from collections.abc import Callable
from typing import TypeVarTuple

from hpc._core.pool import Job, ThreadPool, current_pool

__all__ = ["Scope", "scope"]

Ts = TypeVarTuple("Ts")


class Scope:
    """Created by :func:`scope`; :meth:`spawn` queues work that must finish before the ``with`` block ends."""

    def __init__(self, pool: ThreadPool) -> None:
        self._pool = pool
        self._lock = _threading.Lock()
        self._pending = 0
        self._idle = _threading.Event()
        self._idle.set()
        self._errors: list[BaseException] = []
        self._closed = False  # the with block has ended: nothing would wait for a task spawned now
        self._interrupted = False  # Ctrl-C in the block or its wait: tasks not started yet are dropped

    def spawn(self, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        """Queue ``fn(*args)``; it may spawn more work on the same scope (capture the scope in a closure).

        Raises:
            RuntimeError: the pool takes no more work (it was shut down), or the scope's ``with`` block has ended;
                nothing was queued.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("spawn on a scope whose with block has ended: nothing would wait for the task, "
                                   "nor raise its error; spawn inside the block")
            self._pending += 1
            self._idle.clear()

        def run() -> None:
            try:
                if not self._interrupted:
                    fn(*args)
            except BaseException as exc:
                with self._lock:
                    self._errors.append(exc)
            finally:
                self._done()

        try:
            self._pool.push(Job(run))
        except BaseException:
            self._done()  # never queued: the scope must not wait for it
            raise

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    def wait(self) -> None:
        """Wait for everything spawned so far (helping with other work when called from a worker)."""
        self._pool.wait_until(self._idle)

    def __repr__(self) -> str:
        return f"<hpc Scope pending={self._pending}>"


class _ScopeContext:
    def __init__(self) -> None:
        self._scope: Scope | None = None

    def __enter__(self) -> Scope:
        self._scope = Scope(current_pool())
        return self._scope

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._scope is not None
        if isinstance(exc, KeyboardInterrupt):
            self._scope._interrupted = True  # the tasks running finish; those queued do not start
        try:
            self._scope.wait()
        except KeyboardInterrupt:  # Ctrl-C while waiting: the rest is dropped, the running tasks end on their own
            self._scope._interrupted = True
            raise
        finally:
            with self._scope._lock:
                self._scope._closed = True
        errors = self._scope._errors
        if errors and exc is None:
            first = errors[0]
            if len(errors) > 1:  # raised too, and not raised: named, so no failure goes without a trace
                others = ", ".join(f"{type(e).__name__}: {e}" for e in errors[1:4])
                more = f" and {len(errors) - 4} more" if len(errors) > 4 else ""
                first.add_note(f"hpc: {len(errors) - 1} other spawned task(s) of this scope raised too: "
                               f"{others}{more}")
            raise first


def scope() -> _ScopeContext:
    """Return a context manager whose :class:`Scope` can spawn tasks; leaving it waits for all of them.

    Raises:
        Every spawned task runs to completion. If any raised, the first exception recorded is re-raised when the
        ``with`` block exits (unless the block itself raised, which then propagates), with a note naming the other
        tasks' exceptions, if any. ``spawn`` after the block has ended raises ``RuntimeError``. A
        ``KeyboardInterrupt`` (Ctrl-C) in the block, or while its end waits, drops the tasks not started yet: the
        block waits for the running ones (a Ctrl-C during that wait returns at once, leaving them to end).

    Example:
        >>> from hpc import scope
        >>> out = [0] * 4
        >>> with scope() as s:
        ...     for i in range(4):
        ...         s.spawn(out.__setitem__, i, i * i)
        >>> out
        [0, 1, 4, 9]
    """
    return _ScopeContext()
