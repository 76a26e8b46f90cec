"""Tests for hpc.cuda.stream: Stream and Event ordering, timing and errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hpc import cuda


def test_events_time_forward() -> None:
    """An event recorded later is at least as late: elapsed_ms is >= 0 and covers host work in between."""
    s = cuda.Stream()
    start, end = cuda.Event(), cuda.Event()
    start.record(s)
    if not cuda.is_available():
        time.sleep(0.01)  # on the fallback events hold the host clock at record time
    end.record(s)
    ms = start.elapsed_ms(end)
    assert ms >= 0.0
    if not cuda.is_available():
        assert ms >= 9.0
    assert end.done and s.done


def test_unrecorded_or_untimed_event_raises() -> None:
    """elapsed_ms needs two recorded events made with timing=True."""
    a, b = cuda.Event(), cuda.Event()
    a.record()
    with pytest.raises(RuntimeError, match="recorded"):
        a.elapsed_ms(b)
    c = cuda.Event(timing=False)
    c.record()
    with pytest.raises(RuntimeError, match="timing=True"):
        a.elapsed_ms(c)


def test_record_returns_event_and_repr() -> None:
    """Stream.record makes and records an event; both objects print what they are."""
    s = cuda.Stream()
    e = s.record()
    assert isinstance(e, cuda.Event) and "recorded" in repr(e)
    assert repr(s).startswith("<hpc.cuda.Stream 0x")
    assert isinstance(s.handle, int)


def test_wrong_stream_type_is_rejected() -> None:
    """Passing something that is not a Stream as stream raises TypeError naming it."""
    with pytest.raises(TypeError, match="hpc.cuda.Stream or None"):
        cuda.Event().record("default")  # type: ignore[arg-type]


def test_work_on_one_stream_is_ordered(no_leaks: None) -> None:
    """Copies queued on one stream run in order: the last copy sees the data of the first."""
    s = cuda.Stream()
    a = cuda.to_device(np.arange(1000.0), stream=s)
    b = a.copy(stream=s)
    c = b.copy(stream=s)
    out = c.get(stream=s)
    s.synchronize()
    assert np.array_equal(out, np.arange(1000.0))


def test_staging_buffers_released_after_synchronize(no_leaks: None) -> None:
    """An async copy of a pageable array holds a pinned staging buffer only until the stream is synchronized."""
    s = cuda.Stream()
    before = cuda.memory_stats()["pinned"]["current"]
    a = cuda.to_device(np.ones(512), stream=s)
    s.synchronize()
    assert cuda.memory_stats()["pinned"]["current"] == before
    assert a.stream is s


@pytest.mark.gpu
def test_gpu_consumer_on_another_stream_sees_complete_data() -> None:
    """A copy on stream B made to wait for an event on stream A sees all of A's writes."""
    n = 1 << 24
    a_stream, b_stream = cuda.Stream(), cuda.Stream()
    src = cuda.to_device(np.full(n, 7.0))
    mid = cuda.empty(n)
    for _ in range(4):  # keep stream A busy
        src.copy_to(mid, stream=a_stream)
    done = a_stream.record()
    b_stream.wait_event(done)
    dst = mid.copy(stream=b_stream)
    b_stream.synchronize()
    assert float(dst.get().min()) == 7.0


@pytest.mark.gpu
def test_gpu_event_timing_of_a_copy() -> None:
    """Events around a 256 MiB device copy time it at well under a second and above zero."""
    a = cuda.empty(1 << 25)
    s = cuda.Stream()
    start = s.record()
    a.copy(stream=s)
    end = s.record()
    assert 0.0 < start.elapsed_ms(end) < 1000.0


def test_events_of_the_wrong_type_raise_type_error() -> None:
    s, e = cuda.Stream(), cuda.Event()
    for call in (lambda: s.wait_event(None), lambda: s.record(5), lambda: e.elapsed_ms(3)):
        with pytest.raises(TypeError, match="must be an hpc.cuda.Event"):
            call()
