"""Backend selection, map_init's once-per-worker rule, progress bars, thread caps, shared arrays."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from hpc import ThreadPool, par_chunks, par_iter, par_range
from hpc.iter.plumbing import chunking
from hpc.iter.plumbing.drive import resolve_backend
from hpc.iter.terminals import ForEach, Sum


def _plan(it):
    return it._plan()


def test_auto_runs_chunk_kernels_and_plain_sources_on_threads():
    """auto chooses threads for chunk-level numeric work and for sources with no Python function."""
    assert resolve_backend("auto", _plan(par_chunks(np.zeros(10), 2).map_chunks(np.sum)), Sum()) == "threads"
    assert resolve_backend("auto", _plan(par_range(10)), Sum()) == "threads"
    assert resolve_backend("auto", _plan(par_iter(np.zeros(4)).map_chunks(np.sqrt)), Sum()) == "threads"
    assert resolve_backend("auto", _plan(par_chunks(np.zeros(10), 2).map(np.sum)), Sum()) == "threads"
    assert resolve_backend("auto", _plan(par_iter(np.zeros((3, 2))).map(lambda row: row @ row)), Sum()) == "threads"


def test_auto_runs_numba_kernels_on_threads():
    """A numba-compiled per-item function counts as numeric work: threads, not processes."""
    from numba import njit

    double = njit(nogil=True)(lambda x: 2 * x)
    assert resolve_backend("auto", _plan(par_range(10).map(double)), Sum()) == "threads"


def test_auto_keeps_side_effects_on_threads():
    """auto runs for_each and inspect on threads, so their effects are visible to the caller."""
    assert resolve_backend("auto", _plan(par_range(10)), ForEach(print)) == "threads"
    assert resolve_backend("auto", _plan(par_range(10).inspect(print).map(abs)), Sum()) == "threads"
    seen = []
    par_range(1000).for_each(seen.append)
    assert sorted(seen) == list(range(1000))


def test_auto_probes_per_item_python_and_picks_processes_for_long_runs(monkeypatch):
    """auto times the first chunks of per-item Python work and moves long runs to processes."""
    import hpc.iter.plumbing.drive as drive

    assert resolve_backend("auto", _plan(par_range(10).map(abs)), Sum()) == "probe"
    pids = par_range(64).map(lambda x: os.getpid()).collect()
    assert set(pids) == {os.getpid()}  # short run: stays in this process
    monkeypatch.setattr(drive, "AUTO_INLINE_S", 0.0)
    monkeypatch.setattr(drive, "AUTO_PROCESSES_WARM_S", 0.0)
    monkeypatch.setattr(drive, "AUTO_PROCESSES_COLD_S", 0.0)
    pids = par_range(64).map(lambda x: os.getpid()).collect()
    assert pids[0] == os.getpid() and set(pids[1:]) - {os.getpid()}  # first chunk timed here, rest elsewhere


def test_auto_runs_a_short_run_on_the_calling_thread(monkeypatch):
    """A short run of per-item Python work under auto never leaves the caller (a hand-off to the pool cost 10-100x
    the work for 10 items), and gives the serial result. The budget is widened here: 0.5 ms is a scheduler's time
    slice on a loaded 2-core machine (CI runs two test files at once), and the test is about the rule, not the
    clock."""
    from hpc.iter.plumbing import drive

    monkeypatch.setattr(drive, "AUTO_INLINE_S", 5.0)
    here = threading.get_ident()
    assert set(par_range(64).map(lambda x: threading.get_ident()).collect()) == {here}
    xs = [0.1 * i for i in range(100)]
    assert par_iter(xs).map(lambda x: x * 3).sum() == par_iter(xs).map(lambda x: x * 3).with_backend("serial").sum()


def test_auto_hands_a_long_run_to_the_pool_after_its_start():
    """Items that take long run on the caller only until the inline budget is spent: the rest goes to the pool."""
    here = threading.get_ident()

    def slow(x):
        time.sleep(0.005)
        return threading.get_ident()

    threads = par_range(16).map(slow).collect()
    assert threads[0] == here and set(threads[1:]) - {here}


def test_hpc_backend_env_sets_the_default(monkeypatch):
    """HPC_BACKEND picks the backend when with_backend is not called."""
    monkeypatch.setenv("HPC_BACKEND", "serial")
    names = par_range(100).map(lambda x: threading.current_thread().name).collect()
    assert set(names) == {threading.current_thread().name}
    monkeypatch.setenv("HPC_BACKEND", "threads")
    names = par_range(100).map(lambda x: threading.current_thread().name).collect()
    assert all(n.startswith("hpc-worker-") for n in names)


def test_mpi_backend_on_one_process_equals_serial():
    """Without a launcher, with_backend('mpi') runs as one rank and gives the serial result bit for bit."""
    xs = [0.1 * i for i in range(10_000)]
    assert par_iter(xs).with_backend("mpi").sum() == par_iter(xs).with_backend("serial").sum()
    assert par_range(50).with_backend("mpi").map(str).collect() == [str(i) for i in range(50)]


@pytest.mark.parametrize("backend", ["serial", "threads", "processes"])
def test_map_init_runs_init_once_per_worker_per_call(backend):
    """map_init calls init at most once per worker (thread or process) per terminal call, never per item."""
    calls = (
        par_range(2000)
        .map_init(lambda: [os.getpid(), threading.get_ident()], lambda s, x: tuple(s))
        .with_backend(backend)
        .collect()
    )
    states = set(calls)
    workers = 1 if backend == "serial" else ThreadPool().num_threads
    assert 1 <= len(states) <= workers
    # a second call makes fresh states
    counter = []
    par_range(2000).map_init(lambda: counter.append(1), lambda s, x: x).with_backend("threads").sum()
    assert 1 <= len(counter) <= ThreadPool().num_threads


@pytest.mark.parametrize("moves_to", ["threads", "processes"])
def test_map_init_under_auto_never_runs_init_in_the_caller(monkeypatch, tmp_path, moves_to):
    """auto probes the first chunk on a pool worker: the calling thread never runs init.

    When the probe keeps the run on threads, init runs at most once per pool thread (the prober's state is reused);
    when it moves the rest to processes, once in the probing pool thread plus at most once per worker process.
    """
    import hpc.iter.plumbing.drive as drive
    from hpc import config

    threshold = float("inf") if moves_to == "threads" else 0.0
    monkeypatch.setattr(drive, "AUTO_PROCESSES_WARM_S", threshold)
    monkeypatch.setattr(drive, "AUTO_PROCESSES_COLD_S", threshold)
    log = str(tmp_path / "init.log")

    def init():
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()} {threading.get_ident()}\n")
        return os.getpid()

    out = par_range(2000).map_init(init, lambda pid, x: (pid, x)).collect()
    assert [x for _, x in out] == list(range(2000))
    with open(log) as fh:
        calls = [tuple(int(v) for v in line.split()) for line in fh]
    assert len(calls) == len(set(calls))  # never twice in one thread of one process
    here = [tid for pid, tid in calls if pid == os.getpid()]
    assert threading.get_ident() not in here  # the probe ran on a pool worker, not on the caller
    workers = config.num_threads()
    if moves_to == "threads":
        assert {pid for pid, _ in out} == {os.getpid()}
        assert 1 <= len(calls) <= workers
    else:
        assert out[0][0] == os.getpid() and {pid for pid, _ in out[1:]} - {os.getpid()}
        assert len(here) == 1  # the probed first chunk
        assert len(calls) <= workers + 1


def test_chunk_boundaries_depend_only_on_length_and_bounds():
    """Chunks are a function of the input length and with_min_len/with_max_len, not of the pool."""
    assert chunking.chunk_ranges(0) == []
    assert chunking.chunk_ranges(5) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    big = chunking.chunk_ranges(10_000)
    assert len(big) <= chunking.TARGET_CHUNKS and big[-1][1] == 10_000
    assert all(e - s == 40 for s, e in big[:-1])
    assert chunking.chunk_len(10_000, min_len=100) == 100
    assert chunking.chunk_len(10_000, max_len=7) == 7
    sizes = []
    with ThreadPool(1):
        sizes.append(par_range(1000).with_min_len(300).fold(lambda: 0, lambda a, x: a + 1).collect())
    with ThreadPool(3):
        sizes.append(par_range(1000).with_min_len(300).fold(lambda: 0, lambda a, x: a + 1).collect())
    assert sizes[0] == sizes[1] == [300, 300, 300, 100]


def test_tree_reduce_has_a_fixed_shape():
    """tree_reduce pairs neighbours level by level, whatever the values."""
    assert chunking.tree_reduce(list("abcde"), lambda a, b: f"({a}{b})") == "(((ab)(cd))e)"
    with pytest.raises(ValueError):
        chunking.tree_reduce([], max)


def test_progress_bar_counts_every_item(capsys):
    """progress=True draws a tqdm bar that reaches the number of source items."""
    assert par_range(5000).map(lambda x: x).with_backend("threads").sum(progress=True) == sum(range(5000))
    err = capsys.readouterr().err
    assert "5000/5000" in err


def test_blas_threads_are_capped_inside_thread_workers():
    """Inside a threads run BLAS uses cores // pool threads, so numpy calls in workers do not oversubscribe."""
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure a BLAS is loaded
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS library visible to threadpoolctl")
    with ThreadPool(2):
        inside = (
            par_range(4)
            .map(lambda _: max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"))
            .with_backend("threads")
            .collect()
        )
    assert max(inside) <= max(1, (os.cpu_count() or 1) // 2)


def test_large_arrays_reach_processes_through_shared_memory(monkeypatch):
    """On processes a large array is mapped from one shared file, and results match the threads backend."""
    from hpc.iter.plumbing import processes

    monkeypatch.setattr(processes, "SHARE_BYTES", 1024)
    before = set(_shm_files())
    a = np.arange(100_000, dtype=np.float64)
    got = par_chunks(a, 1000).map(lambda v: (type(v).__name__, float(v.sum()))).with_backend("processes").collect()
    assert {kind for kind, _ in got} == {"memmap"}
    assert sum(s for _, s in got) == a.sum()
    assert (
        par_iter(a).map(lambda x: x * 2).with_backend("processes").sum()
        == par_iter(a).map(lambda x: x * 2).with_backend("threads").sum()
    )
    assert set(_shm_files()) <= before  # the shared file and the board are removed


def _shm_files():
    """This process's shared files (named ``hpc-<pid>-`` and ``hpc-board-<pid>-``): other processes' runs, such as
    the other pytest-xdist worker's, make and remove their own meanwhile."""
    if not os.path.isdir("/dev/shm"):
        return []
    ours = (f"hpc-{os.getpid()}-", f"hpc-board-{os.getpid()}-")
    return sorted(f for f in os.listdir("/dev/shm") if f.startswith(ours))


def test_large_object_arrays_reach_processes_pickled(monkeypatch):
    """An object array above the sharing size cannot be memory-mapped: it is pickled like a small one."""
    from hpc.iter.plumbing import processes

    monkeypatch.setattr(processes, "SHARE_BYTES", 1024)
    a = np.empty(5000, dtype=object)
    a[:] = [str(i) for i in range(5000)]
    assert par_iter(a).map(len).with_backend("processes").sum() == sum(len(str(i)) for i in range(5000))


def test_kernels_may_write_into_shared_chunks_as_into_pickled_ones(monkeypatch):
    """A kernel that updates its chunk in place works on a shared (mapped) array as on a small pickled one."""
    from hpc.iter.plumbing import processes

    def double_in_place(v):
        v *= 2
        return v

    a = np.ones(10_000)
    small = par_iter(a).map_chunks(double_in_place).with_backend("processes").sum()
    monkeypatch.setattr(processes, "SHARE_BYTES", 1024)
    shared = par_iter(a).map_chunks(double_in_place).with_backend("processes").sum()
    assert small == shared == 20_000.0
    assert (a == 1.0).all()  # the caller's array is never written by worker processes


def test_shared_file_is_removed_when_writing_it_fails(monkeypatch):
    """A write to /dev/shm that fails (a full disk) leaves no file behind."""
    from hpc.iter.plumbing import processes

    monkeypatch.setattr(processes, "SHARE_BYTES", 1024)

    def failing_save(path, arr):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(processes._np, "save", failing_save)
    before = _shm_files()
    with pytest.raises(OSError, match="No space"):
        par_iter(np.ones(10_000)).map(float).with_backend("processes").sum()
    assert _shm_files() == before


def test_processes_run_without_a_board_when_it_cannot_be_made(monkeypatch):
    """The shared board only stops work early: when /dev/shm cannot hold it (full), runs go on and agree."""
    from hpc.iter.plumbing import processes

    real = processes._tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if kwargs.get("prefix") == "hpc-board-":
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(processes._tempfile, "mkstemp", mkstemp)

    def f(x):
        if x in (737, 1900):
            raise KeyError(f"bad item {x}")
        return x * 0.5

    for backend in ("serial", "processes"):
        assert par_range(2000).map(lambda x: x * 0.5).with_backend(backend).sum() == sum(x * 0.5 for x in range(2000))
        assert par_range(2000).with_backend(backend).find_first(lambda x: x % 700 == 699) == 699
        with pytest.raises(KeyError, match="bad item 737") as info:
            par_range(2000).map(f).with_backend(backend).sum()
        assert "item 737" in " ".join(info.value.__notes__)


def _deleted_board_handles():
    """This process's descriptors and mappings of board files already removed (runs that are over)."""
    fds = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used
            continue
        fds += "hpc-board-" in target and target.endswith("(deleted)")
    with open("/proc/self/maps") as fh:
        maps = sum("hpc-board-" in line and "(deleted)" in line for line in fh)
    return os.getpid(), fds, maps


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc (Linux)")
def test_no_process_keeps_the_board_of_a_finished_run():
    """Neither the workers nor the driver keep a descriptor or a mapping of a finished run's board."""

    def f(x):
        if x == 17:
            raise ZeroDivisionError("fails")
        return x

    for _ in range(12):
        par_range(40).map(lambda x: x + 1).with_backend("processes").sum()
        with pytest.raises(ZeroDivisionError):
            par_range(40).map(f).with_backend("processes").sum()
        par_range(400).map(lambda x: x).with_backend("processes").find_first(lambda x: x == 233)
    got = par_range(64).map(lambda _: _deleted_board_handles()).with_backend("processes").with_max_len(1).collect()
    assert {(fds, maps) for _, fds, maps in got} == {(0, 0)}, got
    assert _deleted_board_handles()[1:] == (0, 0)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_large_array_subclasses_reach_workers_as_themselves(monkeypatch):
    """An array subclass above the sharing size (a matrix here) reaches workers whole, not as the plain array the
    shared memory holds: its rows are matrices there as on threads. (Masked arrays are refused: test_sources.py.)"""
    from hpc.iter.plumbing import processes

    monkeypatch.setattr(processes, "SHARE_BYTES", 1024)
    m = np.matrix(np.arange(2000.0).reshape(200, 10))

    def kind(row):
        return type(row).__name__, row.shape, float(row.sum())

    got = par_iter(m).map(kind).with_backend("processes").collect()
    assert got == par_iter(m).map(kind).with_backend("threads").collect()
    assert got[0] == ("matrix", (1, 10), 45.0)


def test_auto_keeps_items_that_cannot_be_pickled_on_threads(monkeypatch):
    """auto never sends a run to processes when its items (locks here) cannot travel there: threads run it."""
    import hpc.iter.plumbing.drive as drive

    monkeypatch.setattr(drive, "AUTO_PROCESSES_WARM_S", 0.0)
    monkeypatch.setattr(drive, "AUTO_PROCESSES_COLD_S", 0.0)
    locks = [threading.Lock() for _ in range(1000)]
    assert par_iter(locks).map(lambda lock: lock.locked() + 1).sum() == 1000


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_min_max_of_floats_with_nan_give_the_builtins_answer(backend, chunk):
    """min/max of floats holding NaNs equal builtins.min/max of the items, whatever the chunking.

    The builtins keep a NaN that comes first and pass over later ones; NumPy's min would spread any NaN.
    """
    import math

    rng = np.random.default_rng(4)
    for case in range(20):
        x = rng.standard_normal(int(rng.integers(1, 40)))
        x[rng.random(x.size) < 0.3] = np.nan
        if case % 4 == 0:
            x[0] = np.nan
        for source in (x, x.tolist()):  # a float array (vectorized chunks) and a list of Python floats
            it = par_iter(source).with_backend(backend).with_max_len(chunk)
            for ours, builtin in ((it.min(), min(x.tolist())), (it.max(), max(x.tolist()))):
                assert (math.isnan(ours) and math.isnan(builtin)) or ours == builtin
    assert par_iter(np.array([3.0, 1.0, np.nan, 0.5])).with_backend(backend).min() == 0.5


@pytest.mark.parametrize("positional", ["enumerate", "skip", "zip", "step_by"])
def test_settings_given_last_reach_what_a_positional_adapter_collects(positional):
    """After filter, a positional adapter collects the items so far; a with_backend given after it applies to that
    collection too (it ran on the settings of the moment the adapter was added: "auto", on workers)."""
    import threading

    threads = set()

    def keep(x):
        threads.add(threading.current_thread().name)
        return x % 3 == 0

    filtered = par_range(600).filter(keep)
    follow = {
        "enumerate": lambda it: it.enumerate(),
        "skip": lambda it: it.skip(1),
        "zip": lambda it: it.zip(range(1000)),
        "step_by": lambda it: it.step_by(2),
    }[positional]
    count = follow(filtered).with_backend("serial").count()
    assert count == {"enumerate": 200, "skip": 199, "zip": 200, "step_by": 100}[positional]
    assert threads == {threading.current_thread().name}


def _in_a_pool_worker(backend):
    """Run in a multiprocessing.Pool worker (a daemonic process): a per-item Python run long enough for auto to
    want processes, on ``backend``; return its sum, or the error's type and message."""

    def slow(x):
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass
        return x

    try:
        return par_range(600).map(slow).with_backend(backend).sum()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def test_a_daemonic_process_runs_auto_on_threads_and_refuses_processes_clearly():
    """Inside a multiprocessing.Pool worker, auto failed with "daemonic processes are not allowed to have children"
    (so did processes, with that bare AssertionError): auto takes threads there, processes says why it cannot."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:
        auto, processes = pool.map(_in_a_pool_worker, ["auto", "processes"])
    assert auto == sum(range(600))
    assert processes.startswith("RuntimeError: the processes backend cannot start worker processes here")


def test_map_init_never_shares_a_state_between_two_items_in_progress():
    """A nested parallel call inside the function lets the waiting thread run another chunk of the same call: that
    chunk had taken the same state and overwritten it under the item still in progress (1 to 3 items a run)."""
    clobbered = []

    def f(state, x):
        state["cur"] = x
        par_range(8).map(lambda y: (time.sleep(0.001), y)[1]).with_backend("threads").with_max_len(1).sum()
        if state["cur"] != x:
            clobbered.append((x, state["cur"]))
        return x

    inits = []

    def init():
        inits.append(1)
        return {"cur": None}

    total = ThreadPool(4).install(
        lambda: par_range(200).map_init(init, f).with_backend("threads").with_max_len(1).sum())
    assert total == sum(range(200)) and clobbered == []
    assert len(inits) < 200  # states are reused by the next chunk on a thread, not made per item
