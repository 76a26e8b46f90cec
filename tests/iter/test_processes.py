"""The processes backend across fork and multiprocessing children: no inherited executor, no wait at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from hpc import par_iter, par_range

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")


def _run(tmp_path, source: str) -> str:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(source))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.timeout(180)
def test_a_forked_child_runs_the_processes_backend_the_parent_used(tmp_path):
    """The child of os.fork inherited the parent's executor object without its threads or workers: its first run
    waited forever. It now starts workers of its own."""
    out = _run(tmp_path, """
        import os
        from hpc import par_range
        assert par_range(100).map(lambda x: x * 2).with_backend("processes").sum() == 9900
        pid = os.fork()
        if pid == 0:
            import faulthandler
            faulthandler.dump_traceback_later(60, exit=True)  # the former hang fails the test instead
            ok = par_range(100).map(lambda x: x * 3).with_backend("processes").sum() == 14850
            from hpc.iter.plumbing.processes import shutdown_executor
            shutdown_executor()  # os._exit skips every cleanup: the child's own workers would idle on
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent again", par_range(100).map(lambda x: x).with_backend("processes").sum())
    """)
    assert "child 0" in out and "parent again 4950" in out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_child_using_processes_exits_when_done(tmp_path, method):
    """A multiprocessing child skips atexit, and its exit joins its children: it waited for our idle workers'
    300 s timeout. A finalizer now ends them first; the child's exit code is there within the join."""
    out = _run(tmp_path, f"""
        import multiprocessing as mp
        from hpc import par_range

        def child(q):
            q.put(par_range(100).map(lambda x: x).with_backend("processes").sum())

        if __name__ == "__main__":
            ctx = mp.get_context("{method}")
            q = ctx.Queue()
            p = ctx.Process(target=child, args=(q,))
            p.start()
            result = q.get(timeout=60)
            p.join(60)
            print("result", result, "exitcode", p.exitcode)
            if p.exitcode is None:
                p.kill()
    """)
    assert "result 4950 exitcode 0" in out


def _slow_identity(x):
    time.sleep(0.002)
    return x


def _start_long_run(result: dict) -> threading.Thread:
    """Start a thread with a processes run of 400 slow items (a second or more): its sum goes to ``result["sum"]``,
    or what it raised to ``result["error"]``."""

    def long_run():
        try:
            result["sum"] = par_range(400).with_max_len(5).map(_slow_identity).with_backend("processes").sum()
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=long_run)
    t.start()
    return t


@pytest.mark.timeout(120)
def test_auto_sends_items_that_do_not_pickle_back_to_threads(monkeypatch):
    """auto chose processes after checking one chunk of items; a later chunk's lock does not pickle: the groups
    already sent finish there and the rest runs on threads, with every result in order (it raised a TypeError that
    blamed the functions). Asked for by name, the processes backend raises that TypeError, naming the items."""
    import hpc.iter.plumbing.drive as drive

    monkeypatch.setattr(drive, "AUTO_PROCESSES_WARM_S", 0.0)
    monkeypatch.setattr(drive, "AUTO_PROCESSES_COLD_S", 0.0)
    lock = threading.Lock()
    items = [*range(300), lock]
    out = par_iter(items).with_max_len(10).map(_slow_identity).collect()
    assert out[:300] == list(range(300)) and out[300] is lock
    with pytest.raises(TypeError, match=r"functions and items \(items \d+\.\.300, chunks? \d+"):
        par_iter(items).with_max_len(10).map(_slow_identity).with_backend("processes").collect()


@pytest.mark.timeout(120)
def test_auto_keeps_results_that_do_not_pickle_on_threads(monkeypatch):
    """A first chunk whose results (locks) could not come back from a worker keeps the run on threads."""
    import hpc.iter.plumbing.drive as drive

    monkeypatch.setattr(drive, "AUTO_PROCESSES_WARM_S", 0.0)
    monkeypatch.setattr(drive, "AUTO_PROCESSES_COLD_S", 0.0)
    out = par_range(200).with_max_len(10).map(lambda x: (time.sleep(0.001), threading.Lock())[1]).collect()
    assert len(out) == 200 and all(not lock.locked() for lock in out)


@pytest.mark.timeout(120)
def test_one_runs_failure_leaves_the_pool_to_the_others():
    """A run whose results do not pickle fails with that TypeError, and a run of another thread on the shared
    process pool finishes with its answer (the failure killed the pool under it: ShutdownExecutorError)."""
    result = {}


    par_range(4).with_backend("processes").sum()  # the pool is up before the two runs meet
    t = _start_long_run(result)
    time.sleep(0.3)
    with pytest.raises(TypeError, match="pickle"):
        par_range(40).map(lambda x: threading.Lock()).with_backend("processes").collect()
    t.join(100)
    assert result == {"sum": sum(range(400))}


@pytest.mark.parametrize("error", [SystemExit, KeyboardInterrupt])
def test_a_base_exception_from_the_function_fails_only_its_run(error):
    """SystemExit or KeyboardInterrupt raised by the user's function in a worker is that run's failure, raised in
    the caller; a run of another thread on the shared pool finishes (the driver took it for an interrupt and killed
    the pool: loky's ShutdownExecutorError)."""
    from hpc.iter.plumbing import processes

    result = {}


    def quits(x):
        if x == 30:
            raise error(3)
        return x

    par_range(4).with_backend("processes").sum()
    executor = processes._executor
    t = _start_long_run(result)
    time.sleep(0.3)
    with pytest.raises(error):
        par_range(40).map(quits).with_backend("processes").sum()
    t.join(100)
    assert result == {"sum": sum(range(400))}
    assert processes._executor is executor


@pytest.mark.timeout(120)
def test_another_threads_new_thread_count_lets_a_running_run_finish(monkeypatch):
    """set_num_threads in one thread, then a processes run there, replaces the pool (another size): a run another
    thread has on the old pool finishes on it (it was killed: loky's ShutdownExecutorError), and the old pool goes
    when that run ends."""
    import hpc
    from hpc.iter.plumbing import processes

    monkeypatch.setattr(processes._config, "available_cpus", lambda: 2)
    result = {}


    hpc.set_num_threads(2)
    try:
        par_range(4).with_backend("processes").sum()
        old = processes._executor
        t = _start_long_run(result)
        time.sleep(0.3)
        hpc.set_num_threads(1)
        assert par_range(50).map(abs).with_backend("processes").sum() == sum(range(50))
        assert processes._executor is not old and processes._executor._max_workers == 1
        t.join(100)
    finally:
        hpc.set_num_threads(None)
    assert result == {"sum": sum(range(400))}
    assert old._hpc_runs == 0 and old._flags.shutdown  # retired by its last run


@pytest.mark.timeout(120)
def test_a_run_whose_pool_another_run_killed_says_so():
    """A pool terminated by another thread's run (its Ctrl-C, a dead worker) fails this run with a note that says
    what ended it (a bare ShutdownExecutorError named no cause)."""
    from hpc.iter.plumbing import processes

    result = {}


    par_range(4).with_backend("processes").sum()
    t = _start_long_run(result)
    deadline = time.monotonic() + 60
    while not processes._live_runs and time.monotonic() < deadline:  # the run has its groups on the pool
        time.sleep(0.01)
    (run,) = processes._live_runs
    processes._kill(run.executor, "a KeyboardInterrupt in another thread's run")
    t.join(100)
    notes = getattr(result.get("error"), "__notes__", [])
    assert any("terminated by a KeyboardInterrupt in another thread's run" in note for note in notes), result
    assert par_range(20).map(abs).with_backend("processes").sum() == sum(range(20))  # a fresh pool


def test_a_processes_run_nested_in_a_worker_process_stays_in_it():
    """An inner processes run inside a worker process runs there, serially (each worker made a pool of its own:
    n + n**2 processes at two levels)."""

    def inner(i):
        return os.getpid(), set(par_range(20).map(lambda x: os.getpid()).with_backend("processes").collect())

    outer = par_range(4).map(inner).with_backend("processes").collect()
    assert all(pids == {pid} for pid, pids in outer)


def test_worker_processes_are_at_most_one_per_cpu(monkeypatch):
    """HPC_NUM_THREADS sizes thread pools; the process pool takes at most one worker per CPU (50 on 2 CPUs made 50
    interpreters)."""
    from hpc import config
    from hpc.iter.plumbing import processes

    monkeypatch.setenv("HPC_NUM_THREADS", str(config.available_cpus() + 3))
    assert par_range(64).map(abs).with_backend("processes").sum() == sum(range(64))
    assert processes._executor._max_workers == config.available_cpus()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/dev/shm") or not os.path.isdir("/proc"), reason="Linux only")
@pytest.mark.timeout(120)
def test_a_driver_ended_by_sigterm_leaves_no_working_worker_and_its_files_go(tmp_path):
    """SIGTERM to a driver in the middle of a processes run (a job's time limit): its workers exit within a chunk
    (they went on at full CPU for minutes, then idled for 300 s), and the next run removes its shared files (they
    stayed for good)."""
    import signal

    from hpc.iter.plumbing import processes

    log = tmp_path / "pids.log"
    script = textwrap.dedent(f"""
        import os, time
        import numpy as np
        from hpc import par_iter

        def slow(x):
            with open({str(log)!r}, "a") as fh:
                fh.write(f"{{os.getpid()}}\\n")
            time.sleep(0.005)
            return x

        par_iter(np.arange(524288.0)).with_max_len(64).map(slow).with_backend("processes").sum()
    """)
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = set(log.read_text().split()) if log.exists() else set()
            if len(workers) >= 2 or (workers and processes._config.available_cpus() == 1):
                break
            time.sleep(0.05)
        files = [name for name in os.listdir("/dev/shm") if name.startswith(f"hpc-{child.pid}-")]
        assert files, "the run shares its input through /dev/shm"
        child.send_signal(signal.SIGTERM)
        child.wait(30)
    finally:
        child.kill()
    deadline = time.monotonic() + 20
    while any(_running(int(pid)) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _running(int(pid))]
    processes.remove_stale_files()  # or a processes run of another test process did first: any run removes them
    assert not [name for name in os.listdir("/dev/shm") if name.startswith(f"hpc-{child.pid}-")]


def test_stale_files_of_dead_drivers_go_and_a_live_drivers_stay():
    """remove_stale_files removes the shared files of a driver that no longer runs, and keeps a running one's."""
    from hpc.iter.plumbing import processes

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = f"/dev/shm/hpc-{dead.pid}-stale-test.npy"
    live = f"/dev/shm/hpc-{os.getpid()}-live-test.npy"
    for path in (stale, live):
        with open(path, "wb") as fh:
            fh.write(b"x")
    try:
        removed = processes.remove_stale_files()
        assert not os.path.exists(stale)  # removed here, or by a processes run of another test process
        assert os.path.exists(live) and os.path.basename(live) not in removed
    finally:
        for path in (stale, live):
            if os.path.exists(path):
                os.unlink(path)


def test_a_worker_keeps_the_contexts_of_the_calls_it_still_serves(monkeypatch):
    """The worker side kept 8 calls' contexts by age: with more runs at once, a call's context was dropped while
    the call went on, and map_init's init ran again in that worker (up to 9 times). Recently used ones stay now."""
    from collections import OrderedDict

    from hpc.iter.plumbing import processes

    monkeypatch.setattr(processes, "_contexts", OrderedDict())
    first = processes._context_for("busy")
    for k in range(3 * processes._KEPT_CONTEXTS):
        processes._context_for(f"other {k}")
        assert processes._context_for("busy") is first  # used all along: never dropped
    assert len(processes._contexts) == processes._KEPT_CONTEXTS


class _Reported(Exception):
    """An exception kept as a value, whose __init__ takes two arguments: it pickles, and does not load."""

    def __init__(self, url, status):
        super().__init__(url)
        self.status = status


def _report(x):
    return _Reported(f"item {x}", 500) if x % 7 == 0 else x


def _lock_late(x):
    return threading.Lock() if x >= 900 else x


def test_results_that_cannot_come_back_are_this_runs_error_and_auto_takes_threads():
    """Results that pickle but do not load broke loky's shared pool ("A result has failed to un-serialize"), and
    with it another thread's run; auto failed where threads succeed. Now: the processes backend raises a TypeError
    naming the chunks, auto runs the rest on threads, and the pool is unharmed."""
    with pytest.raises(TypeError, match=r"cannot come back from the worker process"):
        par_range(50).map(_report).with_backend("processes").collect()
    for fn in (_report, _lock_late):  # every chunk, or only the late ones
        got = par_range(1000).map(fn).with_backend("auto").collect()
        assert len(got) == 1000 and got[1] == 1
    out = []
    other = threading.Thread(target=lambda: out.append(
        par_range(200).map(lambda x: (time.sleep(0.002), x)[1]).with_backend("processes").sum()))
    other.start()
    with pytest.raises(TypeError, match=r"cannot come back"):
        par_range(20).map(_report).with_backend("processes").collect()
    other.join(60)
    assert out == [sum(range(200))]


def _die_at_77(x):
    if x == 77:
        os._exit(3)
    return x


def test_a_worker_that_dies_is_named_in_a_note_and_the_next_run_works():
    """loky's TerminatedWorkerError said nothing of the run: a note names the items the pool was running."""
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool) as caught:
        par_range(200).map(_die_at_77).with_backend("processes").sum()
    note = " ".join(getattr(caught.value, "__notes__", []))
    assert "a worker process of the processes backend ended while the pool ran items" in note
    ranges = [tuple(map(int, r.split(".."))) for r in note.split("ran items ")[1].split(" of ")[0].split(", ")]
    assert any(lo <= 77 <= hi for lo, hi in ranges)
    assert par_range(10).map(_slow_identity).with_backend("processes").sum() == 45


@pytest.mark.timeout(120)
def test_a_strided_array_is_shared_without_a_contiguous_copy_of_it(monkeypatch):
    """A large strided source (arr[::2], a column) goes to the workers' shared file in contiguous pieces of rows,
    in C order: a contiguous copy of it whole took the array's size again in the driver (joblib takes none)."""
    import tracemalloc

    import numpy as np

    from hpc.iter.plumbing import processes

    monkeypatch.setattr(processes, "_SAVE_PIECE_BYTES", 1 << 20)
    base = np.arange(1 << 21, dtype=np.float64).reshape(-1, 2)
    column = base[:, 1]  # 8 MiB, stride 16 bytes
    rows = np.asfortranarray(base)  # 16 MiB, Fortran order
    par_iter(range(4)).with_backend("processes").sum()  # workers up before the count
    tracemalloc.start()
    try:
        total = par_iter(column).with_backend("processes").sum()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == column.sum()
    assert peak < column.nbytes // 2, peak
    firsts = par_iter(rows).map(lambda row: float(row[0])).with_backend("processes").collect()
    assert firsts == base[:, 0].tolist()


@pytest.mark.timeout(120)
def test_interpreter_exit_stops_a_daemon_threads_run_at_its_next_chunk(run_script, tmp_path):
    """A processes run still going in a daemon thread when the program ends: its groups stop at the workers' next
    chunk (exit waited for the groups in progress, each up to a quarter of the run: 12 s in one case), and the
    thread's error says why the run stopped."""
    log = tmp_path / "items.log"
    source = textwrap.dedent(f"""
        import os, threading, time
        from hpc import par_range
        LOG = {str(log)!r}

        def slow(x):
            time.sleep(0.02)
            fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, b"x\\n")
            os.close(fd)
            return x

        def body():
            par_range(2000).with_max_len(5).map(slow).with_backend("processes").sum()

        if __name__ == "__main__":
            threading.Thread(target=body, daemon=True).start()
            while not os.path.exists(LOG) or os.path.getsize(LOG) < 20:  # ten items done
                time.sleep(0.01)
    """)
    run_script(source)
    done = log.read_text().count("x")
    assert done < 200, done  # a group in progress ran to its end: hundreds of items (a quarter of 2000)
    assert "the interpreter is exiting" in run_script.last_stderr


@pytest.mark.timeout(120)
def test_a_child_forked_during_a_run_does_not_stop_the_parents_run_as_it_exits():
    """The exit hook stops the runs in progress; a child forked while another thread's run went on inherited that
    run in its list, and its exit would post "cancelled" on the parent's shared board. The child's list starts
    empty."""
    from hpc.iter.plumbing import processes

    result = {}
    t = _start_long_run(result)
    deadline = time.monotonic() + 60
    while not processes._live_runs and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(0 if not processes._live_runs else 1)
    _, status = os.waitpid(pid, 0)
    t.join(100)
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == {"sum": sum(range(400))}
