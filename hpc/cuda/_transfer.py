"""Host<->device copies; pageable arrays go through pinned staging buffers so they move at pinned speed.

A copy from or to page-locked memory is one DMA. A pageable array bigger than ``STAGE_MIN`` is moved in ``CHUNK``
pieces through two pinned buffers on an internal stream: while the DMA of one piece runs, the host copies the next
(with several threads, since one thread's memcpy is slower than the link).
"""

from __future__ import annotations

import concurrent.futures as _futures
import os as _os
import threading as _threading

import numpy as _np

from hpc.cuda import _backend, memory
from hpc.cuda.stream import Event, Stream, handle_of

__all__ = ["dtoh", "htod"]

#: pageable copies at least this big are staged through pinned memory (smaller ones go direct)
STAGE_MIN = 1 << 22
#: the size of one staged piece
CHUNK = 1 << 23

_executor: _futures.ThreadPoolExecutor | None = None
_executor_lock = _threading.Lock()
_local = _threading.local()


def _copy(dst: _np.ndarray, src: _np.ndarray) -> None:
    """Copy the uint8 array ``src`` into ``dst`` with a few threads when it is big (np.copyto drops the GIL)."""
    global _executor
    n = src.nbytes
    workers = min(8, _os.cpu_count() or 1)
    if n < (1 << 21) or workers == 1:
        _np.copyto(dst, src)
        return
    with _executor_lock:
        if _executor is None:
            _executor = _futures.ThreadPoolExecutor(workers, thread_name_prefix="hpc-cuda-stage")
    step = -(-n // workers)
    jobs = [_executor.submit(_np.copyto, dst[i : i + step], src[i : i + step]) for i in range(0, n, step)]
    for job in jobs:
        job.result()


def _staging(device_index: int) -> tuple[Stream, list[memory.Buffer], list[Event]]:
    # One internal stream and two pinned pieces per thread and device, kept for reuse.
    key = f"stage{device_index}"
    state = getattr(_local, key, None)
    if state is None or state[1][0].nbytes != CHUNK:
        stream = Stream(device_index)
        bufs = [memory.mark_internal(memory.pinned_pool().allocate(CHUNK)) for _ in range(2)]
        events = [Event(device_index, timing=False) for _ in range(2)]
        state = (stream, bufs, events)
        setattr(_local, key, state)
    return state


def release_staging() -> None:
    """Give this thread's staging buffers back to the pinned pool (they are made again when needed)."""
    for key in [k for k in vars(_local) if k.startswith("stage")]:
        for buf in getattr(_local, key)[1]:
            buf.free()
        delattr(_local, key)


def _order_after_default(device_index: int, stream: Stream) -> None:
    # A copy with stream=None is ordered after earlier work on the legacy default stream; the internal stream
    # must see that work too.
    mark = Event(device_index, timing=False)
    mark.record(None)
    stream.wait_event(mark)


def htod(dst: int, src: _np.ndarray, device_index: int, stream: Stream | None = None) -> None:
    """Copy the C-contiguous host array ``src`` to device address ``dst``.

    With ``stream=None`` it returns when the data is on the device. With a stream it returns at once; a pageable
    ``src`` is copied to a pinned buffer first (so the caller may reuse ``src`` at once).
    """
    handle_of(stream)  # a TypeError for anything but a Stream or None, before any work
    driver = _backend.get()
    raw = src.reshape(-1).view(_np.uint8)
    n = raw.nbytes
    if n == 0:
        return
    pinned = memory.is_pinned(src)
    if stream is not None:
        if not pinned:
            buf = memory.pinned_pool().allocate(n)
            _copy(buf.host, raw)
            raw = buf.host
            stream._keep_until_done(buf)
        driver.htod(dst, raw, handle_of(stream))
        return
    if pinned or n < STAGE_MIN:
        driver.htod(dst, raw, None)
        return
    inner, bufs, events = _staging(device_index)
    _order_after_default(device_index, inner)
    for i, lo in enumerate(range(0, n, CHUNK)):
        k = i % 2
        if i >= 2:
            events[k].synchronize()  # the DMA that last read this piece has finished
        piece = bufs[k].host[: min(CHUNK, n - lo)]
        _copy(piece, raw[lo : lo + piece.nbytes])
        driver.htod(dst + lo, piece, handle_of(inner))
        events[k].record(inner)
    inner.synchronize()


def dtoh(dst: _np.ndarray, src: int, device_index: int, stream: Stream | None = None) -> None:
    """Copy from device address ``src`` into the C-contiguous host array ``dst``.

    Raises:
        ValueError: a stream was given but ``dst`` is pageable (an asynchronous copy needs pinned memory).
    """
    handle_of(stream)
    driver = _backend.get()
    raw = dst.reshape(-1).view(_np.uint8)
    n = raw.nbytes
    if n == 0:
        return
    pinned = memory.is_pinned(dst)
    if stream is not None:
        if not pinned:
            raise ValueError("out must be pinned (cuda.pinned_empty) for an asynchronous copy; got a pageable array")
        driver.dtoh(raw, src, handle_of(stream))
        return
    if pinned or n < STAGE_MIN:
        driver.dtoh(raw, src, None)
        return
    inner, bufs, events = _staging(device_index)
    _order_after_default(device_index, inner)
    starts = list(range(0, n, CHUNK))

    def enqueue(i: int) -> None:
        lo = starts[i]
        piece = bufs[i % 2].host[: min(CHUNK, n - lo)]
        driver.dtoh(piece, src + lo, handle_of(inner))
        events[i % 2].record(inner)

    enqueue(0)
    for i, lo in enumerate(starts):
        if i + 1 < len(starts):
            enqueue(i + 1)  # the next piece's DMA runs while this one is copied out
        events[i % 2].synchronize()
        piece = bufs[i % 2].host[: min(CHUNK, n - lo)]
        _copy(raw[lo : lo + piece.nbytes], piece)
