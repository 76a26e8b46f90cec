"""Streams and events, like ``cupy.cuda.Stream`` and ``cupy.cuda.Event`` (on ``pycuda.driver.Stream``/``Event``).

Work queued on one stream runs in order; work on different streams may overlap. An :class:`Event` recorded on a
stream marks a point in it: wait for it on the host (:meth:`Event.synchronize`), make another stream wait for it
(:meth:`Stream.wait_event`), or time the work between two events (:meth:`Event.elapsed_ms`). ``stream=None``
anywhere in hpc.cuda means the legacy default stream. On the host fallback every operation runs when it is
queued, so streams are always idle and events hold ``time.perf_counter()`` at the moment they are recorded.
"""

from __future__ import annotations

import threading as _threading
from typing import Any as _Any

from hpc.cuda import _backend, context

__all__ = ["Event", "Stream", "handle_of"]


class Stream:
    """A CUDA stream of the current device, destroyed when the object is collected (RAII, as in CuPy).

    Args:
        device (int or Device or None): the device whose primary context owns the stream; default: the current.

    .. note:: Creating a stream costs a few microseconds; nothing synchronizes until :meth:`synchronize`.

    .. versionadded:: 0.1.0
    """

    def __init__(self, device: _Any = None) -> None:
        self.device_index = context.device_index(device)
        self._driver = _backend.get()
        with context.active(self.device_index):
            self._stream = self._driver.stream_new()
        self._keep: list[tuple[_Any, object]] = []
        self._keep_lock = _threading.Lock()

    @property
    def handle(self) -> int:
        """int: the ``CUstream`` address (what ``__cuda_array_interface__`` and DLPack carry)."""
        return self._driver.stream_handle(self._stream)

    @property
    def done(self) -> bool:
        """bool: whether all work queued so far has finished (never blocks)."""
        with context.active(self.device_index):
            return self._driver.stream_done(self._stream)

    def synchronize(self) -> None:
        """Block the calling thread until all work queued on this stream has finished."""
        with context.active(self.device_index):
            self._driver.stream_sync(self._stream)
        with self._keep_lock:
            self._keep.clear()

    def record(self, event: Event | None = None) -> Event:
        """Record ``event`` (a new one when ``None``) at this point of the stream and return it."""
        event = Event(device=self.device_index) if event is None else _event_of(event)
        event.record(self)
        return event

    def wait_event(self, event: Event) -> None:
        """Make later work on this stream wait until ``event`` has happened, without blocking the host."""
        event = _event_of(event)
        with context.active(self.device_index):
            self._driver.stream_wait(self._stream, event._event)

    def _keep_until_done(self, obj: object) -> None:
        # A staging buffer must outlive the asynchronous copy that reads it: hold it until an event recorded
        # now has happened. Each call also drops what earlier calls held and is finished.
        event = self.record(Event(device=self.device_index, timing=False))
        with self._keep_lock:
            self._keep = [(e, o) for e, o in self._keep if not e.done]
            self._keep.append((event, obj))

    def __repr__(self) -> str:
        return f"<hpc.cuda.Stream 0x{self.handle:x} on device {self.device_index}>"


def _event_of(event: object, name: str = "event") -> Event:
    if not isinstance(event, Event):
        raise TypeError(f"{name} must be an hpc.cuda.Event; got {event!r}")
    return event


def handle_of(stream: Stream | None) -> _Any:
    """Return the driver object of ``stream`` (``None`` for the legacy default stream)."""
    if stream is None:
        return None
    if not isinstance(stream, Stream):
        raise TypeError(f"stream must be an hpc.cuda.Stream or None; got {stream!r}")
    return stream._stream


class Event:
    """A marker in a stream: record it, wait for it, or time the work between two of them.

    Args:
        device (int or Device or None): the device; default: the current.
        timing (bool): whether the event can be timed (a little cheaper without).

    Example:
        >>> from hpc import cuda
        >>> start, end = cuda.Event(), cuda.Event()
        >>> start.record(); end.record()
        >>> start.elapsed_ms(end) >= 0.0
        True

    .. versionadded:: 0.1.0
    """

    def __init__(self, device: _Any = None, timing: bool = True) -> None:
        self.device_index = context.device_index(device)
        self.timing = timing
        self._driver = _backend.get()
        with context.active(self.device_index):
            self._event = self._driver.event_new(timing)
        self._recorded = False

    def record(self, stream: Stream | None = None) -> None:
        """Mark the current end of ``stream`` (``None``: the default stream); never blocks."""
        with context.active(self.device_index):
            self._driver.event_record(self._event, handle_of(stream))
        self._recorded = True

    def synchronize(self) -> None:
        """Block the calling thread until the work before the recorded point has finished."""
        with context.active(self.device_index):
            self._driver.event_sync(self._event)

    @property
    def done(self) -> bool:
        """bool: whether the recorded point has been reached (never blocks)."""
        with context.active(self.device_index):
            return self._driver.event_done(self._event)

    def elapsed_ms(self, end: Event) -> float:
        """Return the milliseconds from this event to ``end``, waiting for ``end`` first.

        Raises:
            RuntimeError: either event was never recorded, or one was made with ``timing=False``.

        .. note:: Synchronizes on ``end``. GPU events resolve to about half a microsecond.
        """
        end = _event_of(end, "end")
        if not (self._recorded and end._recorded):
            raise RuntimeError("both events must be recorded before elapsed_ms")
        if not (self.timing and end.timing):
            raise RuntimeError("elapsed_ms needs events made with timing=True")
        end.synchronize()
        with context.active(self.device_index):
            return self._driver.event_elapsed_ms(self._event, end._event)

    def __repr__(self) -> str:
        state = "recorded" if self._recorded else "not recorded"
        return f"<hpc.cuda.Event {state} on device {self.device_index}>"
