"""Whole jobs under a real mpiexec: a dying rank ends the job, the watchdog names a stall, the no-MPI fallback."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hpc import _launcher

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found next to the interpreter or on PATH")


def _clean_env(**extra: str) -> dict[str, str]:
    env = _launcher.child_environment()  # the launcher's variables go: a job inside a job would join it
    env.pop("HPC_MPI_CHECK", None)
    env.update(extra)
    return env


def _run_job(code: str, ranks: int, timeout: float = 60, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [MPIEXEC, "-n", str(ranks), sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_env(**env),
    )
    return proc, time.monotonic() - start


@needs_mpiexec
def test_one_rank_raising_ends_the_whole_job_quickly():
    """An uncaught exception on rank 1 aborts every rank with a non-zero status and its traceback, within 20 s."""
    proc, elapsed = _run_job(
        """
        import time
        from hpc import mpi
        comm = mpi.world()
        if comm.rank == 1:
            raise RuntimeError("rank one gives up")
        comm.allreduce(1.0)   # rank 0 waits here for a partner that never comes
        time.sleep(60)
        """,
        ranks=2,
    )
    assert proc.returncode != 0, proc.stderr
    assert elapsed < 20, f"the job took {elapsed:.1f} s to end: {proc.stderr}"
    assert "rank one gives up" in proc.stderr and "Traceback" in proc.stderr


@needs_mpiexec
def test_watchdog_reports_the_stalled_collective_and_rank():
    """With HPC_MPI_TIMEOUT set, a collective that one rank never joins is reported by name, number (the user's
    count of collectives: each had counted twice, with its header step) and rank, and ends."""
    proc, elapsed = _run_job(
        """
        import time
        from hpc import mpi
        comm = mpi.world()
        comm.allreduce(1.0)
        comm.allreduce(2.0)
        if comm.rank == 0:
            comm.allreduce(3.0)
        else:
            time.sleep(30)
        """,
        ranks=2,
        HPC_MPI_TIMEOUT="1.5",
    )
    assert proc.returncode != 0, proc.stderr
    assert elapsed < 25, f"{elapsed:.1f} s: {proc.stderr}"
    assert "allreduce (collective #3) on rank 0 of 2" in proc.stderr and "HPC_MPI_TIMEOUT" in proc.stderr, proc.stderr


@needs_mpiexec
@pytest.mark.parametrize(
    "call,check,reported",
    [
        ("comm.allgather(np.ones(3))", "0", "allgather"),
        ("comm.allreduce(np.ones(3), op='argmin')", "0", "allreduce"),
        ("comm.bcast(np.ones(3))", "0", "bcast"),  # on the root, whose pickled bcast returned at once
        ("comm.barrier()", "0", "barrier"),
        ("par_range(4).with_backend('mpi').sum()", "0", "with_backend('mpi')"),
        ("comm.allgather(np.ones(3))", "1", "allgather"),
        ("comm.bcast(np.ones(3))", "1", "bcast"),
    ],
)
def test_watchdog_reports_a_stall_in_every_kind_of_collective(call, check, reported):
    """Collectives whose first step is pickled or blocking hung past HPC_MPI_TIMEOUT; now each one is reported.

    Rank 1 sleeps for 5 s, then leaves without joining; rank 0 must be reported after 1 s, also in check mode.
    """
    proc, elapsed = _run_job(
        f"""
        import time
        import numpy as np
        from hpc import mpi, par_range
        comm = mpi.world()
        if comm.rank == 0:
            {call}
            print("returned", flush=True)
        else:
            time.sleep(5)
        """,
        ranks=2,
        timeout=30,
        HPC_MPI_TIMEOUT="1",
        HPC_MPI_CHECK=check,
    )
    assert proc.returncode != 0 and "returned" not in proc.stdout, proc.stderr
    assert elapsed < 20, f"{elapsed:.1f} s: {proc.stderr}"
    assert f"hpc.mpi: {reported} (collective #" in proc.stderr and "rank 0 of 2" in proc.stderr, proc.stderr


@needs_mpiexec
def test_watchdog_reports_a_stall_inside_a_blocking_step():
    """A rank that drops out after every rank arrived at a blocking step (a pickled allgather) left the others
    inside MPI, where they cannot poll: they hung forever. A watcher thread now reports the step and aborts."""
    proc, elapsed = _run_job(
        """
        import time
        import numpy as np
        from hpc import mpi
        from hpc.mpi import guard
        comm = mpi.world()

        def arrive_and_leave():
            guard.arrive(comm._engine, "allgather")  # rank 0's allgather's header step, and no allgather after it

        if comm.rank == 0:
            comm.allgather(np.ones(3))
            print("returned", flush=True)
        else:
            arrive_and_leave()
            time.sleep(30)
        """,
        ranks=2,
        timeout=60,
        HPC_MPI_TIMEOUT="1",
    )
    assert proc.returncode != 0 and "returned" not in proc.stdout, proc.stderr
    assert elapsed < 20, f"{elapsed:.1f} s: {proc.stderr}"
    assert "hpc.mpi: allgather (collective #" in proc.stderr and "rank 0 of 2" in proc.stderr, proc.stderr
    assert "in a blocking step" in proc.stderr and "missing: rank 1 gave no answer" in proc.stderr, proc.stderr


def test_without_mpi4py_everything_runs_on_one_process():
    """With mpi4py unimportable, hpc.mpi still works as a single rank whose results equal the local computation."""
    code = """
        import sys
        sys.modules["mpi4py"] = None
        import numpy as np
        from hpc import mpi, par_range
        comm = mpi.world()
        assert isinstance(comm.mpi, mpi.LocalComm) and (comm.rank, comm.size) == (0, 1)
        x = np.arange(6.0).reshape(2, 3)
        assert (comm.allreduce(x) == x).all() and comm.allreduce(2) == 2
        assert comm.allreduce(np.array([3.0, 1.0]), op="argmin") == (1.0, 1)
        assert (comm.allgather(x) == x).all() and comm.bcast({"a": 1}) == {"a": 1}
        assert comm.exscan(5) == 0 and comm.scan(5) == 5
        assert (comm.allreduce(x, reproducible=True) == x).all()
        n, mean, var = mpi.moments(comm, np.arange(4.0))
        assert (n, mean, var) == (4, 1.5, 1.25)
        with comm.fused() as f:
            r = f.allreduce(1.5)
        assert r.value == 1.5
        assert par_range(10).with_backend("mpi").sum() == 45
        print("ok")
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, env=_clean_env()
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_launcher_of_another_mpi_than_the_library_is_named_in_a_warning():
    """mpiexec of one MPI starting ranks whose mpi4py loads another's library ran N one-rank jobs with no word from
    hpc (mpi4py says only "suspicious MPI execution environment"). Hydra's variables of a 2-rank job around a
    process whose MPI starts alone stand for it here."""
    code = """
        import warnings
        warnings.simplefilter("error", RuntimeWarning)
        from hpc import mpi
        try:
            mpi.world()
        except RuntimeWarning as warning:
            print(warning)
    """
    env = _clean_env(PMI_RANK="0", PMI_SIZE="2")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert "started this process as one of 2 ranks" in proc.stdout and "world of 1 process" in proc.stdout, proc.stdout
    alone = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
                           env=_clean_env())
    assert alone.returncode == 0 and alone.stdout == "", alone.stdout + alone.stderr  # no launcher: no warning


def test_world_without_a_launcher_is_one_rank():
    """Outside mpiexec, world() is a single rank and collectives return the local values."""
    from hpc import mpi

    comm = mpi.world()
    assert comm.size == 1 and comm.rank == 0
    assert comm.allreduce(7) == 7


def test_a_process_started_alone_leaves_no_shared_memory(tmp_path):
    """Without a launcher, MPI starts off shared memory: Open MPI 5 left a 16 MiB segment per such process in
    /dev/shm (nobody cleans up after a singleton; here it would land in tmp_path), and the setting stays private."""
    code = """
        import os
        from hpc import mpi
        comm = mpi.world()
        print(comm.size, comm.allreduce(2.0), os.environ.get("OMPI_MCA_btl"))
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(OMPI_MCA_btl_sm_backing_directory=str(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "2.0", "None"]
    assert list(tmp_path.iterdir()) == []


@needs_mpiexec
@pytest.mark.parametrize(
    "script,args,expect",
    [
        ("mpi_stats.py", [], "reproducible column sums"),
        ("mpi_pi.py", ["20000"], "pi ~ 3.1"),
        ("mpi_iter.py", [], "same bits as one process: True"),
    ],
)
def test_example_jobs_run_on_two_ranks(script, args, expect):
    """Each example job in scripts/ runs under mpiexec -n 2 and prints its result once, from rank 0."""
    path = Path(__file__).resolve().parents[2] / "scripts" / script
    proc = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(expect) == 1, proc.stdout


@needs_mpiexec
def test_the_scripts_own_classes_come_back_as_themselves_on_the_mpi_backend():
    """Results and exceptions of classes defined in the job's script are those classes on every rank: isinstance and
    `except` work (sent by value, as cloudpickle sends a __main__ class, each rank got copies for the other ranks'
    items). Lambdas among the results still travel."""
    proc, _ = _run_job(
        """
        from dataclasses import dataclass
        from hpc import mpi, par_range

        @dataclass
        class Point:
            x: int

        class MyError(Exception):
            pass

        def fail_at_7(i):
            if i == 7:
                raise MyError("item 7")
            return i

        points = par_range(10).map(Point).with_backend("mpi").collect()
        assert all(type(p) is Point for p in points) and points == [Point(i) for i in range(10)]
        try:
            par_range(10).map(fail_at_7).with_backend("mpi").sum()
        except MyError as exc:
            assert "item 7" in str(exc)
        else:
            raise AssertionError("no MyError")
        squares = par_range(6).map(lambda i: (lambda: i * i)).with_backend("mpi").collect()
        assert [g() for g in squares] == [0, 1, 4, 9, 16, 25]
        print(f"rank {mpi.world().rank} ok", flush=True)  # one write: the ranks' lines cannot interleave
        """,
        ranks=2,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(re.findall(r"rank \d ok", proc.stdout)) == ["rank 0 ok", "rank 1 ok"], proc.stdout


@needs_mpiexec
def test_a_bad_setting_on_one_rank_ends_the_job_quickly():
    """HPC_MPI_TIMEOUT=x on rank 1 only: its ConfigError came before the abort hook was installed, and rank 0 waited
    in its allreduce for ever."""
    proc, elapsed = _run_job(
        """
        import os
        from hpc import _launcher
        if (_launcher.detect() or {}).get("rank") == 1:
            os.environ["HPC_MPI_TIMEOUT"] = "x"
        from hpc import mpi
        comm = mpi.world()
        comm.allreduce(1.0)
        """,
        ranks=2,
    )
    assert proc.returncode != 0 and elapsed < 20, (elapsed, proc.stderr)
    assert "HPC_MPI_TIMEOUT" in proc.stderr


@needs_mpiexec
def test_ranks_that_cannot_load_mpi_say_so():
    """Under a launcher of 2 ranks with no loadable MPI library every rank ran alone without a word (a collective
    fit gave each rank its own model); now each warns."""
    proc, _ = _run_job(
        """
        import warnings
        warnings.simplefilter("always")
        from hpc import mpi
        print("size", mpi.world().size)
        """,
        ranks=2,
        MPI4PY_LIBMPI="/nonexistent/libmpi.so",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("size 1") == 2
    assert proc.stderr.count("started this process as one of 2 ranks, but mpi4py or its MPI library could not") == 2


@needs_mpiexec
def test_process_workers_started_before_mpi_still_refuse_a_fit():
    """A processes run before MPI started left loky workers without the rank's marker: a fit inside them then joined
    the MPI job and died ("PMI_Init failed"). The workers are started again once the rank is marked."""
    proc, _ = _run_job(
        """
        import os
        import numpy as np
        import hpc

        def fit(seed):
            from hpc import ml
            X = np.random.default_rng(seed).random((40, 3))
            return ml.KMeans(n_clusters=2, n_init=1, random_state=seed).fit(X).inertia_

        hpc.par_range(2).with_backend("processes").map(lambda i: os.getpid()).collect()
        from hpc import mpi
        mpi.world()
        try:
            hpc.par_range(2).with_backend("processes").map(fit).collect()
        except RuntimeError as exc:
            print("refused:", "is not a rank itself" in str(exc))
        """,
        ranks=2,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("refused: True") == 2, proc.stdout + proc.stderr


@needs_mpiexec
def test_a_first_iallreduce_against_another_collective_is_a_mismatch_under_the_watchdog():
    """The host names' gathering started at the first watched wait but an iallreduce's: a rank whose first call was
    an iallreduce never started it, and its partner waited for it in the mismatch report (a hang the watchdog
    did not see). Both ranks raise RankMismatchError."""
    proc, _ = _run_job(
        """
        import sys
        import numpy as np
        from hpc import mpi
        c = mpi.world()
        try:
            c.iallreduce(np.arange(3.0)).result() if c.rank == 0 else c.allreduce(np.arange(3.0))
        except mpi.RankMismatchError:
            sys.stdout.write(f"{c.rank} RankMismatchError\\n")  # one write: the ranks' lines do not interleave
            sys.stdout.flush()
        """,
        ranks=2,
        HPC_MPI_TIMEOUT="5",
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == ["0 RankMismatchError", "1 RankMismatchError"], proc.stdout


@needs_mpiexec
def test_a_watched_job_leaves_no_request_pending_at_finalize():
    """The host names' gathering was never completed when no watched wait came after it: MPICH printed "Builtin
    communicator ... has pending 1 references" at the end of every watched job."""
    proc, _ = _run_job(
        """
        import sys
        from hpc import mpi
        sys.stdout.write(f"{mpi.world().allreduce(1.0)}\\n")
        """,
        ranks=2,
        HPC_MPI_TIMEOUT="5",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2.0", "2.0"] and "pending" not in proc.stderr, proc.stderr


@needs_mpiexec
def test_a_watched_job_that_finalizes_mpi_itself_exits_cleanly():
    """The exit hook that completes the host names' gathering called MPI after a user's MPI.Finalize()."""
    proc, _ = _run_job(
        """
        import sys
        from mpi4py import MPI
        from hpc import mpi
        value = mpi.world().allreduce(1.0)
        MPI.Finalize()
        sys.stdout.write(f"{value}\\n")
        """,
        ranks=2,
        HPC_MPI_TIMEOUT="5",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2.0", "2.0"] and "after finalizing" not in proc.stderr, proc.stderr
