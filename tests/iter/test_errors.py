"""Errors are loud: original type and message, the failing item's index, cancellation, a reusable pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from hpc import ThreadPool, par_iter, par_range


def _notes(exc: BaseException) -> str:
    return " ".join(getattr(exc, "__notes__", []))


@pytest.mark.parametrize("backend", ["serial", "threads", "processes"])
def test_exception_keeps_type_message_and_names_the_item(backend):
    """An exception in map re-raises with its type and message, and a note naming the failing item."""

    def f(x):
        if x == 737:
            raise KeyError(f"bad item {x}")
        return x

    with pytest.raises(KeyError, match="bad item 737") as info:
        par_range(2000).map(f).with_backend(backend).sum()
    assert "item 737" in _notes(info.value)
    assert backend in _notes(info.value)


def test_a_short_run_kept_on_the_calling_thread_says_so():
    """auto (and threads, for one chunk) runs a short iterator on the calling thread: the note said "on the serial
    backend", a backend the caller never chose."""
    with pytest.raises(ZeroDivisionError) as info:
        par_range(10).map(lambda x: 1 / 0).sum()
    assert "on the calling thread (auto kept this short run there)" in _notes(info.value)
    with pytest.raises(ZeroDivisionError) as info:
        par_range(1).map(lambda x: 1 / 0).with_backend("threads").sum()
    assert "on the calling thread (threads kept this short run there)" in _notes(info.value)
    with pytest.raises(ZeroDivisionError) as info:
        par_range(10).map(lambda x: 1 / 0).with_backend("serial").sum()
    assert "on the serial backend" in _notes(info.value)


def test_exception_in_filter_after_a_stage_names_the_source_item():
    """A failure in a later stage still names the position of the item being processed."""
    with pytest.raises(ZeroDivisionError) as info:
        par_range(500).filter(lambda x: x % 2 == 0).map(lambda x: 1 // (x - 300)).with_backend("threads").collect()
    assert "item 300" in _notes(info.value)


def test_no_user_code_starts_after_the_failure_is_seen():
    """After a chunk fails, no new chunk starts: far fewer items run than the input holds."""
    started = []
    lock = threading.Lock()

    def f(x):
        with lock:
            started.append(x)
        if x == 0:
            raise ValueError("first item fails")
        time.sleep(0.001)
        return x

    with pytest.raises(ValueError):
        par_range(10_000).map(f).with_backend("threads").with_max_len(10).collect()
    assert len(started) < 500  # the few chunks already running finish; nothing new starts


def test_processes_stop_groups_already_sent_after_a_failure(tmp_path):
    """On processes, groups already sent to workers start no chunk after the failing one once it is posted.

    Each worker records when it starts an item; after the failing item, the failing worker starts nothing and the
    others finish the chunk they are running and start no chunk after the failing one (a chunk may slip in while
    the failure is being posted: at most one more per worker), where they used to run their whole groups (tens of
    chunks each). Chunks before the failing one may still start: one of them may fail too (with many workers they
    sit in other groups, still running when the failure happens).
    """
    from hpc import config

    par_range(8).map(lambda x: x).with_backend("processes").sum()  # start the workers
    log = str(tmp_path / "runs.log")
    chunk = 5
    fail_at = 10 * chunk  # chunk 10: early in the run, the other workers are busy with their groups by then

    def f(x):
        with open(log, "a") as fh:
            fh.write(f"{x} {os.getpid()} {time.time()!r}\n")
        if x == fail_at:
            raise ValueError("fails")
        time.sleep(0.002)
        return x

    with pytest.raises(ValueError, match="fails") as info:
        par_range(2000).map(f).with_backend("processes").with_max_len(chunk).sum()
    assert f"item {fail_at}" in _notes(info.value)
    with open(log) as fh:
        runs = [(int(x), int(pid), float(t)) for x, pid, t in (line.split() for line in fh)]
    failed_at, failed_pid = next((t, pid) for x, pid, t in runs if x == fail_at)
    later = [(x // chunk, pid) for x, pid, t in runs if t > failed_at and x // chunk > fail_at // chunk]
    assert not [c for c, pid in later if pid == failed_pid]  # the failing worker stopped at once
    chunks_after = {c for c, _ in later}
    assert len(chunks_after) <= 2 * max(1, config.num_threads() - 1), sorted(chunks_after)


def test_pool_is_reusable_after_an_error():
    """A failed run leaves the pool usable for the next call, on every backend."""
    for backend in ("threads", "processes"):
        with pytest.raises(RuntimeError):
            par_range(100).map(lambda x: (_ for _ in ()).throw(RuntimeError("x"))).with_backend(backend).sum()
        assert par_range(100).map(lambda x: x + 1).with_backend(backend).sum() == 5050


def test_unpicklable_function_on_processes_says_what_to_do():
    """A function processes cannot pickle gives a TypeError that suggests the threads backend."""
    lock = threading.Lock()
    with pytest.raises(TypeError, match="threads"):
        par_range(10).map(lambda x: (lock, x)[1]).with_backend("processes").sum()


def test_the_lowest_failing_chunk_wins_deterministically():
    """With several failing items, the error reported is always the one of the first failing chunk."""
    for _ in range(5):
        with pytest.raises(ValueError) as info:
            par_range(1000).map(lambda x: (_ for _ in ()).throw(ValueError(str(x))) if x % 100 == 99 else x).sum()
        assert str(info.value) == "99"


_INTERRUPT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from hpc import par_range
    from hpc.iter.plumbing import processes

    # Ctrl-C as under a terminal: a job started in the background by a shell without job control (a CI runner's
    # `cmd &`) passes SIGINT down ignored, and Python then installs no KeyboardInterrupt handler
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def slow(x):
        time.sleep(0.5)
        return x

    print("pid", os.getpid(), flush=True)
    par_range(4).map(lambda x: x).with_backend("processes").sum()   # start the workers
    print("workers", *[p.pid for p in processes._executor._processes.values()], flush=True)
    try:
        par_range(400).map(slow).with_backend("processes").sum()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(7)
    """
)


def test_keyboard_interrupt_on_processes_returns_quickly_and_leaves_no_worker():
    """Ctrl-C during a processes run returns control within seconds, not at the end of the 200 s run, and no worker
    process survives (about 2 s; the bound is generous for a loaded CI machine)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPT_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("pid"), first + proc.stderr.read()
        workers_line = proc.stdout.readline()
        workers = [int(p) for p in workers_line.split()[1:]]
        assert workers, workers_line
        time.sleep(1.0)  # well inside the 400 x 0.5 s run
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted" in out, err
    assert proc.returncode == 7
    assert elapsed < 15.0, f"took {elapsed:.1f} s to return after Ctrl-C"
    deadline = time.monotonic() + 10
    while [pid for pid in workers if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in workers if _alive(pid)]
    assert not alive, f"worker processes left behind: {alive}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def test_a_later_chunk_failing_first_does_not_hide_an_earlier_failure():
    """The lowest failing chunk is raised even when a later chunk fails first: chunks below a failure still run."""
    later_failed = threading.Event()

    def f(x):
        if x < 150:
            later_failed.wait(10)  # the early chunks wait until the late failure has been seen
        if x == 150:
            raise ValueError("early 150")
        if x == 900:
            later_failed.set()
            raise ValueError("late 900")
        return x

    with ThreadPool(2), pytest.raises(ValueError, match="early 150") as info:
        par_range(1000).map(f).with_backend("threads").sum()
    assert "item 150" in _notes(info.value)


class _TwoArgError(Exception):
    def __init__(self, a, b):
        super().__init__(f"bad pair {a}, {b}")


def test_exception_that_cannot_be_unpickled_still_names_its_item_on_processes():
    """An exception that pickles but cannot be rebuilt through its __init__ (it wants two arguments) comes back as
    itself, rebuilt from its type, args and attributes."""

    def f(x):
        if x == 50:
            raise _TwoArgError(x, 1)
        return x

    with pytest.raises(_TwoArgError, match="bad pair 50, 1") as info:
        par_range(100).map(f).with_backend("processes").sum()
    assert "item 50" in _notes(info.value)
    assert par_range(100).map(lambda x: x + 1).with_backend("processes").sum() == 5050


def test_a_failing_chunk_kernel_names_its_chunk_not_an_item():
    """A map_chunks kernel that raises after reading the whole chunk names the chunk's items, not its last item."""

    def kernel(chunk):
        raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError, match="kernel failed") as info:
        par_range(1000).map(float).map_chunks(kernel).with_backend("serial").sum()
    assert "the chunk of items 0..3 (chunk 0)" in _notes(info.value)


def test_find_first_ignores_a_failure_after_its_match_like_serial():
    """find_first returns the first match even when a later chunk, run first by another thread, raised."""
    later_failed = threading.Event()

    def pred(x):
        if x < 100:
            later_failed.wait(10)  # the chunks holding the match wait until the late failure has been seen
        if x == 900:
            later_failed.set()
            raise ValueError("late 900")
        return x == 50

    with ThreadPool(2):  # serially the run would stop at 50 and never reach 900
        assert par_range(1000).with_backend("threads").find_first(pred) == 50


def _stop(x):
    if x == 500:
        raise StopIteration
    return x


def _stop_init():
    raise StopIteration


def _never(x):
    return _stop(x) < 0


def _always(x):
    return _stop(x) >= 0


def _in_a_list(x):
    return [_stop(x)]


def _with_state(state, x):
    return _stop(x)


def _state_only(state, x):
    return x


def _add_item(a, b):
    return _stop(a) + _stop(b)  # item 500 may start its chunk: reduce_with passes it as a


def _add_partials(a, b):
    # items are below 1000, so only combining partials (sums of chunks) passes a b that large
    if b >= 1000:
        raise StopIteration
    return a + b


def _add(a, b):
    return a + b


def _kernel(chunk):
    if 500 in chunk:
        raise StopIteration
    return chunk


# every function a user passes to an adapter or a terminal, each raising StopIteration
_STOPPING = {
    "map": lambda it: it.map(_stop).collect(),
    "map_init fn": lambda it: it.map_init(list, _with_state).sum(),
    "map_init init": lambda it: it.map_init(_stop_init, _state_only).sum(),
    "inspect": lambda it: it.inspect(_stop).count(),
    "filter": lambda it: it.filter(_always).count(),
    "filter_map": lambda it: it.filter_map(_stop).count(),
    "flat_map": lambda it: it.flat_map(_in_a_list).count(),
    "map_chunks": lambda it: it.map_chunks(_kernel).to_numpy(),
    "fold identity": lambda it: it.fold(_stop_init, _add).sum(),
    "fold op": lambda it: it.fold(0, _add_item).sum(),
    "for_each": lambda it: it.for_each(_stop),
    "reduce identity": lambda it: it.reduce(_stop_init, _add),
    "reduce identity of an empty run": lambda it: it.take(0).reduce(_stop_init, _add),
    "reduce op": lambda it: it.reduce(0, _add_item),
    "reduce combine": lambda it: it.reduce(0, _add_partials),
    "reduce_with op": lambda it: it.reduce_with(_add_item),
    "reduce_with combine": lambda it: it.reduce_with(_add_partials),
    "min_by_key": lambda it: it.min_by_key(_stop),
    "max_by_key": lambda it: it.max_by_key(_stop),
    "any": lambda it: it.any(_never),
    "all": lambda it: it.all(_always),
    "find_any": lambda it: it.find_any(_never),
    "find_first": lambda it: it.find_first(_never),
    "find_last": lambda it: it.find_last(_never),
    "position_first": lambda it: it.position_first(_never),
    "partition": lambda it: it.partition(_never),
}


@pytest.mark.parametrize("backend", ["serial", "threads", "processes"])
@pytest.mark.parametrize("where", list(_STOPPING))
def test_a_stop_iteration_from_user_code_is_a_runtime_error(where, backend):
    """A StopIteration raised by any function given to an adapter or a terminal reaches the caller as a RuntimeError,
    as from a generator: raised on, it would read as "no more items" to an iterator the caller runs the terminal in.
    (The builtin map/filter in the adapters would have dropped the rest of the chunk; the terminals and reduce's
    combining let it out as it was.)"""
    with pytest.raises(RuntimeError, match="StopIteration"):
        _STOPPING[where](par_range(1000).with_backend(backend))


def _raise_plain(x):
    if x == 700:
        raise KeyError("item 700")
    return x


def _raise_needs_two(x):
    if x == 700:
        raise _TwoArgError(7, 2)
    return x


def test_a_worker_process_error_keeps_its_type_and_its_traceback():
    """On the processes backend the exception comes back with the worker's traceback as its cause (a
    RemoteTraceback naming the function's frame), and one that cannot be unpickled through its __init__ is rebuilt
    with its type, args and attributes (it used to become a RuntimeError)."""
    import traceback

    from hpc.iter.plumbing.shipping import RemoteTraceback

    for fn, kind in ((_raise_plain, KeyError), (_raise_needs_two, _TwoArgError)):
        with pytest.raises(kind) as info:
            par_range(1000).with_backend("processes").map(fn).sum()
        assert isinstance(info.value.__cause__, RemoteTraceback)
        text = "".join(traceback.format_exception(info.value))
        assert fn.__name__ in text and "item 700 (chunk" in text
    assert str(info.value) == "bad pair 7, 2"


def test_the_error_is_the_items_alone_with_one_hpc_note():
    """The error was raised inside `except ChunkFailure`, so its traceback printed the internal ChunkFailure and
    "During handling of the above exception, another exception occurred"; an exception object raised again (a
    module-level one) gathered one note per run."""
    shared = ValueError("shared")

    def boom(x):
        if x == 3:
            raise shared
        return x

    for _ in range(3):
        with pytest.raises(ValueError) as info:
            par_iter(list(range(8))).map(boom).with_backend("threads").collect()
        assert info.value.__context__ is None
        notes = [n for n in info.value.__notes__ if n.startswith("hpc: raised by")]
        assert notes == ["hpc: raised by item 3 (chunk 3) of a parallel iterator on the threads backend"]


def test_a_nested_runs_note_stays_beside_the_outer_ones():
    """Which inner item failed is in the inner run's note; the outer run adds its own."""

    def inner(i):
        def f(j):
            if (i, j) == (5, 7):
                raise KeyError("deep")
            return j

        return par_range(10).map(f).with_backend("threads").sum()

    with pytest.raises(KeyError) as info:
        par_range(8).map(inner).with_backend("threads").collect()
    notes = [n for n in info.value.__notes__ if n.startswith("hpc: raised by")]
    assert [n.split(" of ")[0] for n in notes] == ["hpc: raised by item 7 (chunk 7)", "hpc: raised by item 5 (chunk 5)"]
