"""Fork-join: run two callables, potentially in parallel (Rayon's ``join``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hpc._core.pool import Job, current_engine

__all__ = ["join"]

A = TypeVar("A")
B = TypeVar("B")


def join(f: Callable[[], A], g: Callable[[], B]) -> tuple[A, B]:
    """Run ``f()`` and ``g()``, potentially in parallel, and return ``(f(), g())``.

    ``g`` is offered to the pool while the caller runs ``f``; if no thread took ``g`` meanwhile, the caller runs it
    too. A worker waiting for ``g`` runs other work instead of blocking, so recursive and nested joins never
    deadlock and never use more threads than the pool has.

    Raises:
        Both callables always run. If one raises, ``join`` re-raises that exception after the other finishes;
        if both raise, ``f``'s exception wins. A ``KeyboardInterrupt`` (Ctrl-C) in ``f`` is the exception: ``g``
        then runs only if it had started.

    Example:
        >>> from hpc import join
        >>> def fib(n):
        ...     return n if n < 2 else sum(join(lambda: fib(n - 1), lambda: fib(n - 2)))
        >>> fib(10)
        55
    """
    workers = current_engine()
    if not workers.is_worker():
        return workers.pool().install(lambda: join(f, g))
    interrupted = False

    def run_g() -> B:
        return None if interrupted else g()  # type: ignore[return-value]  # dropped: nobody reads its result

    job_g = Job(run_g)
    workers.push(job_g)
    try:
        a = f()
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)  # Ctrl-C: g does not start now (a running g finishes)
        workers.wait_for_quietly(job_g)
        raise
    b = workers.wait_for(job_g)
    return a, b
