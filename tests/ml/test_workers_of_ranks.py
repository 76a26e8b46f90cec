"""Fits in the workers of a rank: scikit-learn's ``n_jobs`` under mpiexec (loky processes, threads, a fork).

A worker process of a rank inherits the rank's launcher variables; MPI started there tried to join the job and the
worker died ("PMI_Init failed"). Fits in threads of a rank paired one fit's messages with another's across ranks and
MPI aborted the job ("Message truncated"). Both now give a RuntimeError that says what to do, on every rank.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hpc import _launcher

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found next to the interpreter or on PATH")

_JOB = """
import json, os, warnings
import numpy as np
from joblib import parallel_config
from mpi4py import MPI
from sklearn.model_selection import cross_val_score
from hpc import ml, mpi

rank = mpi.world().rank
X = np.random.default_rng(0).normal(size=(60, 3))
y = (X[:, 0] > 0).astype(int)

def scores(**kwargs):
    return cross_val_score(ml.LogisticRegression(), X, y, cv=3, error_score="raise", **kwargs).tolist()

seen = {}

def say(what, value):  # to a file per rank: the launcher interleaves the ranks' output by pieces
    seen[what] = str(value)
    with open(os.path.join(os.environ["RESULTS"], f"rank{rank}.json"), "w") as fh:
        json.dump(seen, fh)

def refused(**kwargs):
    try:
        scores(**kwargs)
    except RuntimeError as exc:
        return str(exc)
    return "not refused"

say("serial", scores(params={"comm": MPI.COMM_SELF}))
# loky worker processes of a rank: refused with a reason when the job has several ranks
say("loky", refused(n_jobs=2) if mpi.world().size > 1 else scores(n_jobs=2))
# ... and each process fits its own rows with comm=COMM_SELF: MPI starts in the workers, as a singleton
say("self", scores(n_jobs=2, params={"comm": MPI.COMM_SELF}))
with parallel_config(backend="threading", n_jobs=2):
    say("threads", refused() if mpi.world().size > 1 else scores())
# one thread that makes every collective call of the job may, naming the communicator itself
import threading
box = []
fit = lambda **kw: ml.LogisticRegression().fit(X, y, **kw).coef_.tolist()
worker = threading.Thread(target=lambda: box.append(fit(comm=mpi.world())))
worker.start()
worker.join()
say("dedicated", box == [fit()])
pid = os.fork()
if pid == 0:  # a forked child may not use the rank's MPI: its world is itself
    world = mpi.world()
    os._exit(0 if (world.size, world.allreduce(2.0)) == (1, 2.0) else 3)
say("fork", os.waitpid(pid, 0)[1])
"""


def _run(ranks: int, tmp_path: Path) -> dict[tuple[int, str], str]:
    proc = subprocess.run(
        [MPIEXEC, "-n", str(ranks), sys.executable, "-c", textwrap.dedent(_JOB)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**_launcher.child_environment(), "PYTHONWARNINGS": "ignore", "RESULTS": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = {}
    for rank in range(ranks):
        with open(tmp_path / f"rank{rank}.json") as fh:
            seen.update({(rank, what): value for what, value in json.load(fh).items()})
    return seen


@needs_mpiexec
def test_fits_in_workers_of_ranks_are_refused_with_a_reason_on_every_rank(tmp_path):
    seen = _run(2, tmp_path)
    for rank in (0, 1):
        assert "started by MPI rank process" in seen[rank, "loky"] and "n_jobs=1" in seen[rank, "loky"]
        assert "other than the main one" in seen[rank, "threads"] and "n_jobs=1" in seen[rank, "threads"]
        assert seen[rank, "self"] == seen[rank, "serial"], seen
        assert seen[rank, "fork"] == "0" and seen[rank, "dedicated"] == "True"


@needs_mpiexec
def test_fits_in_workers_of_a_single_rank_run_as_without_mpiexec(tmp_path):
    """One rank: its workers' fits are the fits it would make itself, so n_jobs works as in a plain run."""
    seen = _run(1, tmp_path)
    assert seen[0, "loky"] == seen[0, "threads"] == seen[0, "self"] == seen[0, "serial"], seen
    assert seen[0, "fork"] == "0" and seen[0, "dedicated"] == "True"


_PROBE = (
    "import os, hpc; from hpc import _launcher as L; "
    "print(L.started_by_rank() == os.getppid(), L.inherited_job_size(), 'PMI_RANK' in os.environ)"
)


def _as_rank(code: str, *wrapper: str) -> list[str]:
    """Run ``code`` as if a launcher had started it (rank 1 of 4), through ``wrapper``; return its output lines."""
    env = {**_launcher.child_environment(), "PMI_RANK": "1", "PMI_SIZE": "4"}
    command = [*wrapper, sys.executable, "-c", code]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.split("\n")


def test_a_process_started_by_a_rank_is_told_apart_from_the_rank():
    """A process started by a rank that imported hpc.ml (the rank's pid in HPC_MPI_RANK_PID, an ancestor) says so,
    drops the launcher variables at `import hpc`, and keeps the job's size; the rank itself does not, even when a
    wrapper script (a shell holding the same variables) started it."""
    rank = (
        "import subprocess, sys; import hpc.ml; from hpc import _launcher as L; "
        "print(L.started_by_rank(), L.inherited_job_size(), L.launched()); "
        f"subprocess.run([sys.executable, '-c', {_PROBE!r}], check=True)"
    )
    for wrapper in ([], ["sh", "-c", '"$0" "$@"; true']):  # `; true`: the shell waits instead of exec'ing python
        assert _as_rank(rank, *wrapper)[:2] == ["None None True", "True 4 False"], wrapper
    assert _launcher.RANK_MARKER not in _launcher.child_environment({_launcher.RANK_MARKER: "1"})


def test_what_a_rank_runs_stays_a_rank_where_it_may_be_one():
    """A rank that never imported hpc.ml marks nothing (a wrapper in Python may run the real rank as a subprocess),
    and a job the rank starts with mpiexec in its own environment has ranks of its own: neither is taken for a
    worker (they ran as one-process worlds, silently)."""
    wrapper = f"import subprocess, sys; import hpc; subprocess.run([sys.executable, '-c', {_PROBE!r}], check=True)"
    assert _as_rank(wrapper)[0] == "False None True"
    if MPIEXEC is not None:
        nested = (
            "import subprocess, sys; import hpc.ml; "
            f"subprocess.run([{MPIEXEC!r}, '-n', '1', sys.executable, '-c', {_PROBE!r}], check=True)"
        )
        assert _as_rank(nested)[0] == "False None True"
