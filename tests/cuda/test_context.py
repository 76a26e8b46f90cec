"""Tests for Device and the thread-local primary-context stack (hpc.cuda.context)."""

from __future__ import annotations

import threading

import pytest

from hpc import cuda
from hpc.cuda import context


def test_device_repr_and_equality() -> None:
    """Device(0) prints as <hpc.cuda.Device 0>, compares by index and accepts another Device."""
    dev = cuda.Device(0)
    assert repr(dev) == "<hpc.cuda.Device 0>"
    assert dev == cuda.Device(dev) and hash(dev) == hash(cuda.Device(0))
    assert dev != 0


def test_bad_index_is_rejected() -> None:
    """A negative, non-int or out-of-range index raises ValueError naming what is accepted."""
    with pytest.raises(ValueError, match="non-negative int; got -1"):
        cuda.Device(-1)
    with pytest.raises(ValueError, match="got 'a'"):
        cuda.Device("a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got 99"):
        cuda.Device(99)


def test_with_block_pushes_and_pops() -> None:
    """Entering a Device pushes its context on this thread's stack and leaving pops it; blocks nest."""
    assert context.stack() == ()
    with cuda.Device(0) as dev:
        assert context.stack() == (0,)
        assert cuda.current_device() == dev
        with cuda.Device(0):
            assert context.stack() == (0, 0)
        assert context.stack() == (0,)
    assert context.stack() == ()


def test_stack_restored_after_exception() -> None:
    """An exception inside nested with blocks leaves the context stack as it was before."""
    with pytest.raises(KeyError):
        with cuda.Device(0):
            with cuda.Device(0):
                raise KeyError("boom")
    assert context.stack() == ()


def test_active_pushes_only_when_needed() -> None:
    """context.active() pushes for the block when nothing is current, and adds nothing inside a with block."""
    with context.active() as index:
        assert index == 0 and context.stack() == (0,)
    assert context.stack() == ()
    with cuda.Device(0):
        with context.active():
            assert context.stack() == (0,)


def test_pop_without_push_raises() -> None:
    """Popping when hpc pushed nothing on this thread raises a plain RuntimeError."""
    with pytest.raises(RuntimeError, match="pushed no context"):
        context.pop()


def test_each_thread_has_its_own_stack() -> None:
    """A context pushed on one thread is not on another thread's stack."""
    seen: list[tuple[int, ...]] = []
    with cuda.Device(0):

        def worker() -> None:
            seen.append(context.stack())
            with cuda.Device(0):
                seen.append(context.stack())

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert context.stack() == (0,)
    assert seen == [(), (0,)]


def test_synchronize_and_mem_info() -> None:
    """synchronize() returns and mem_get_info() gives free <= total, on any driver."""
    cuda.synchronize()
    free, total = cuda.Device(0).mem_get_info()
    assert 0 <= free <= total


@pytest.mark.gpu
def test_gpu_context_stack_clean_after_exception() -> None:
    """On a GPU, an exception inside a with block leaves pycuda's own context stack empty too."""
    import pycuda.driver as drv

    with pytest.raises(RuntimeError):
        with cuda.Device(0):
            cuda.to_device([1.0, 2.0])
            raise RuntimeError("boom")
    assert context.stack() == ()
    assert drv.Context.get_current() is None  # nothing hpc pushed is left on this thread


@pytest.mark.gpu
def test_gpu_two_threads_use_the_device_at_once() -> None:
    """Two threads each move and reduce their own data on the GPU at the same time, with correct results."""
    import numpy as np

    results: dict[int, float] = {}
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with cuda.Device(0):
                s = cuda.Stream()
                for _ in range(20):
                    a = cuda.to_device(np.full(1 << 18, float(k)), stream=s)
                    s.synchronize()
                    results[k] = cuda.twins.sum(a)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {1: float(1 << 18), 2: float(2 << 18)}


def test_device_arguments_take_ints_numpy_ints_and_devices_only() -> None:
    """One rule for every ``device=``: None, an int (NumPy's too) or a Device; a string raises TypeError (it had
    raised about ``str.index``), and a default device that does not exist is refused when set, not later."""
    import numpy as np

    assert context.device_index(np.int64(0)) == 0 and context.device_index(cuda.Device(0)) == 0
    assert cuda.Device(np.int64(0)).index == 0
    for bad in ("0", 0.0, True):
        with pytest.raises(TypeError, match="device must be"):
            context.device_index(bad)
    with pytest.raises(TypeError):
        cuda.Stream("0")
    with pytest.raises(ValueError):
        context.set_default_index(cuda.device_count() + 5)
    with pytest.raises(TypeError):
        context.set_default_index("a")
    assert context.default_index() == 0
