"""What one execution of a parallel iterator shares between its chunks: cancellation and per-worker state."""

from __future__ import annotations

import threading as _threading
import uuid as _uuid
from collections.abc import Callable
from typing import Any

__all__ = ["ExecContext"]


class ExecContext:
    """Created once per terminal call (and once per worker process per call on the processes backend).

    Holds the cancellation flag that stops new chunks from starting, the lowest chunk index a positional search has
    found so far, the lowest chunk index that failed so far, and the ``map_init`` states, one per worker thread per
    ``map_init`` adapter.
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token or _uuid.uuid4().hex
        self.cancelled = False
        self.found_chunk: int | None = None
        self.failed_chunk: int | None = None
        self._states: dict[tuple[int, int], list[Any]] = {}  # the states of a thread and adapter not in use now
        self._lock = _threading.Lock()

    def take_state(self, key: int, init: Callable[[], Any]) -> Any:
        """Return this worker thread's state for adapter ``key`` for one chunk, calling ``init()`` the first time
        only; give it back with :meth:`give_state` when the chunk ends.

        A chunk that runs on a thread while another chunk of the same call is still in progress there (a nested
        parallel call inside the function lets the waiting thread take one) gets a state of its own, made by
        ``init()``: two items in progress never share one.
        """
        free = self._states.get((_threading.get_ident(), key))
        if free:
            return free.pop()
        return init()

    def give_state(self, key: int, state: Any) -> None:
        """Give back a state :meth:`take_state` returned: the thread's next chunk reuses it."""
        slot = (_threading.get_ident(), key)
        free = self._states.get(slot)
        if free is None:
            with self._lock:
                free = self._states.setdefault(slot, [])
        free.append(state)

    def note_found(self, chunk: int) -> None:
        """Record that ``chunk`` holds a match for a positional search (the lowest index wins)."""
        with self._lock:
            if self.found_chunk is None or chunk < self.found_chunk:
                self.found_chunk = chunk

    def note_failed(self, chunk: int) -> None:
        """Record that ``chunk`` failed: later chunks no longer start, earlier ones still run (one may fail too)."""
        with self._lock:
            if self.failed_chunk is None or chunk < self.failed_chunk:
                self.failed_chunk = chunk

    def __repr__(self) -> str:
        return f"<hpc ExecContext {self.token[:8]} cancelled={self.cancelled}>"
