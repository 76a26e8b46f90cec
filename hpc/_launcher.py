"""What the MPI launcher says about this process and its node, read from its environment variables (MPI is not
touched): the one place that knows the launchers' variables (``hpc info``, ``cuda.bind_rank``, ``hpc.mpi``'s node
detection, the benchmarks and tests that start jobs of their own all read them here)."""

from __future__ import annotations

import contextlib as _contextlib
import os as _os
from collections.abc import Iterator as _Iterator
from collections.abc import Mapping as _Mapping
from typing import Any as _Any

__all__ = [
    "JOB_VARIABLE_PREFIXES", "LOCAL_RANK_VARIABLES", "RANK_MARKER", "WORLD_VARIABLES", "child_environment", "detect",
    "in_job",
    "LAUNCHER_PROCESSES", "drop_inherited_job", "find", "inherited_job_size", "launched", "local_size", "mark_rank",
    "mpi_init_environment", "one_node", "started_by_rank", "unlink_segment_names", "SINGLETON_SEGMENT_PREFIXES",
]  # fmt: skip

#: launcher variables holding the node-local rank, tried in this order, with their node-local size variable
LOCAL_RANK_VARIABLES: tuple[tuple[str, str], ...] = (
    ("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"),  # Open MPI
    ("MPI_LOCALRANKID", "MPI_LOCALNRANKS"),  # MPICH / Intel MPI (Hydra)
    ("MV2_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_SIZE"),  # MVAPICH2
    ("PALS_LOCAL_RANKID", "PALS_LOCAL_SIZE"),  # HPE Cray PALS
    ("PMI_LOCAL_RANK", "PMI_LOCAL_SIZE"),  # PMI-2 launchers
    ("SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"),  # srun
)
#: launchers by their world-rank and world-size variables, first match wins (Open MPI also sets PMIX_RANK: first)
WORLD_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("Hydra (MPICH, Intel MPI)", "PMI_RANK", "PMI_SIZE"),
    ("PMIx", "PMIX_RANK", "SLURM_NTASKS"),
    ("MPI_LOCALRANKID", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
)
#: every launcher's rank variables, node-local and world (a process with one of them set was started by a launcher)
_RANK_VARIABLES = tuple(var for var, _ in LOCAL_RANK_VARIABLES) + tuple(var for _, var, _ in WORLD_VARIABLES)
#: prefixes of the variables a launcher gives the processes it starts: a job started from inside a job must not
#: inherit them, or its processes would try to join the outer one (Hydra gives ranks PMI_* and MPI_LOCAL*, no
#: HYDRA_*: those are the user's settings of mpiexec, HYDRA_IFACE and the like, and are kept)
JOB_VARIABLE_PREFIXES = ("PMI_", "PMIX_", "MPI_LOCAL", "OMPI_")
#: ...and these whole names: Hydra's channels between mpiexec and its proxies (older and newer Hydra)
_JOB_VARIABLE_NAMES = frozenset({"HYDRA_CONTROL_FD", "HYDI_CONTROL_FD", "HYDRA_PROXY_ID", "HYDRA_PROXY_PORT"})
#: ...except these, the user's settings rather than the job's (Open MPI's consent to run as root)
_KEPT_PREFIXES = ("OMPI_ALLOW_RUN_AS_ROOT",)


def find() -> tuple[str, str, str] | None:
    """Return ``(rank variable, its value, the size variable's value)`` of the first launcher that set one, or None.

    Values are stripped; the size's is ``""`` where the launcher does not set it.
    """
    for rank_var, size_var in LOCAL_RANK_VARIABLES:
        value = _os.environ.get(rank_var, "").strip()
        if value:
            return rank_var, value, _os.environ.get(size_var, "").strip()
    return None


def local_size() -> int | None:
    """Return how many ranks the launcher started on this node, or ``None`` where no launcher variable says.

    srun's ``SLURM_NTASKS_PER_NODE`` is what was asked for, not what runs here, so it is not taken as a size.
    """
    found = find()
    if found is None:
        return None
    rank_var, _, size_text = found
    # isdecimal alone would pass other scripts' digits, and isdigit "²", which int() refuses
    return int(size_text) if size_text.isascii() and size_text.isdigit() and rank_var != "SLURM_LOCALID" else None


def one_node(world_size: int) -> bool:
    """Return whether the launcher says all ``world_size`` ranks of the job run on this node (False if unsure).

    An MPI launcher's node-local size decides; under srun alone, the step's node count.
    """
    size = local_size()
    if size is not None:
        return size == world_size
    if _os.environ.get("SLURM_LOCALID", "").strip():
        return _os.environ.get("SLURM_STEP_NUM_NODES", "").strip() == "1"
    return False


def launched() -> bool:
    """Return whether a launcher (mpiexec, srun, ...) started this process, by its environment variables."""
    return _has_rank_variable(_os.environ)


def _has_rank_variable(env: _Mapping[str, str]) -> bool:
    """Whether some launcher's rank variable (node-local or world) is set, and not blank, in ``env``."""
    return any(env.get(var, "").strip() for var in _RANK_VARIABLES)


def detect() -> dict[str, _Any] | None:
    """Return ``{"name", "rank", "size"}`` when an MPI launcher started this process, else ``None``.

    ``rank`` or ``size`` is ``None`` where the launcher does not say (a Hydra proxy that set only ``PMI_FD``).
    """
    env = _os.environ
    for name, rank_var, size_var in WORLD_VARIABLES:
        if env.get(rank_var, "").strip():  # an empty one is no launcher's (launched() reads it so too)
            return {"name": name, "rank": _int_or_none(env.get(rank_var)), "size": _int_or_none(env.get(size_var))}
    if "PMI_FD" in env or "PMI_PORT" in env:  # a Hydra proxy's connection (HYDRA_* are the user's settings)
        return {"name": "Hydra (MPICH, Intel MPI)", "rank": None, "size": None}
    return None


def child_environment(env: _Mapping[str, str] | None = None) -> dict[str, str]:
    """Return ``env`` (default: this process's) without the launcher's job variables: the environment in which to
    start a new, separate MPI job (an ``mpiexec``) from inside one. Outside a job (no launcher started this
    process) nothing is a job's: the user's own settings (``OMPI_MCA_*``, ``PMIX_MCA_*``) go on unchanged."""
    env = _os.environ if env is None else env
    if not in_job(env):
        return {k: v for k, v in env.items() if k != RANK_MARKER}
    return {
        k: v
        for k, v in env.items()
        if k != RANK_MARKER and k not in _JOB_VARIABLE_NAMES
        and (not k.startswith(JOB_VARIABLE_PREFIXES) or k.startswith(_KEPT_PREFIXES))
    }


def in_job(env: _Mapping[str, str] | None = None) -> bool:
    """Whether ``env`` (default: this process's) is a launched process's: a rank variable of some launcher, or a
    Hydra proxy's connection (:func:`launched`, and a proxy that set only its connection)."""
    env = _os.environ if env is None else env
    return _has_rank_variable(env) or any(var in env for var in ("PMI_FD", "PMI_PORT", "HYDI_CONTROL_FD"))


#: set in a rank (a process a launcher started) to its pid by :func:`mark_rank`, and inherited by what it starts
RANK_MARKER = "HPC_MPI_RANK_PID"


def started_by_rank() -> int | None:
    """Return the pid of the MPI rank that started this process, when this process is not a rank itself: a loky or
    multiprocessing worker, or a subprocess, of a rank that imported hpc. Else None (a rank, or no launcher).

    Such a process inherits the rank's launcher variables, so by them alone it looks like that rank; MPI initialised
    there tries to join the job and fails (MPICH: "PMI_Init failed"). It is told apart by :data:`RANK_MARKER`,
    which a rank sets (:func:`mark_rank`), naming one of its ancestors (Linux: ``/proc``) with no launcher process
    between (a rank of a job that the rank started with ``mpiexec`` is a rank). A rank started through a wrapper
    script marks itself, not the shell, so it is a rank. Read once per process.
    """
    pid = _os.getpid()
    if _parent_rank[0] != pid:
        _parent_rank[:] = [pid, _find_parent_rank()]
    return _parent_rank[1]


def mark_rank() -> None:
    """In a rank (a launcher started it; no rank did), record its pid in :data:`RANK_MARKER` for the processes it
    starts, and drop the job's variables in a child it forks. Run when hpc starts MPI in a rank, and by
    ``import hpc.ml``, whose estimators scikit-learn hands to worker processes (a rank that never imports them
    marks nothing: a program it runs as a subprocess may be the real rank behind a wrapper)."""
    pid = _os.getpid()
    if not launched() or started_by_rank() is not None or _os.environ.get(RANK_MARKER) == str(pid):
        return
    _os.environ[RANK_MARKER] = str(pid)
    if not _fork_hook and hasattr(_os, "register_at_fork"):
        _os.register_at_fork(after_in_child=drop_inherited_job)  # a forked child would join the job as the rank
        _fork_hook.append(True)


_fork_hook: list[bool] = []


def drop_inherited_job() -> None:
    """In a process a rank started (:func:`started_by_rank`), remove the launcher's variables, which are the rank's:
    MPI then starts there as a singleton (mpi4py imported by hpc, by the user, or by unpickling a communicator),
    and hpc's node and rank detection sees no launcher. Run by ``import hpc``, in a child a marked rank forks, and
    before hpc initialises MPI."""
    pid = _os.getpid()
    if started_by_rank() is None or _inherited_size[0] == pid:  # once: then they are gone
        return
    _inherited_size[:] = [pid, _detected_size()]
    for key in set(_os.environ) - set(child_environment()) - {RANK_MARKER}:  # the marker stays, for its children
        del _os.environ[key]


def inherited_job_size() -> int | None:
    """In a process a rank started: the number of ranks of that rank's job (None where unknown, or elsewhere)."""
    if started_by_rank() is None:
        return None
    if _inherited_size[0] != _os.getpid():  # the variables are still here
        return _detected_size()
    return _inherited_size[1]


def _detected_size() -> int | None:
    found = detect()
    return found["size"] if found else None


_inherited_size: list[int | None] = [None, None]  # [the pid that dropped the variables, the job's size then]
_parent_rank: list[int | None] = [None, None]  # [the pid it was read in, its answer]: a forked child reads again


def _find_parent_rank() -> int | None:
    marker = _os.environ.get(RANK_MARKER, "").strip()
    if not (marker.isascii() and marker.isdigit()) or int(marker) == _os.getpid() or not launched():
        return None
    rank = int(marker)
    return rank if _is_ancestor(rank) else None


#: launchers and their proxies (``/proc/<pid>/comm``, at most 15 characters): a process below one of them, under
#: the marked rank, belongs to a job that rank started (an mpiexec of its own), and is a rank of that job
LAUNCHER_PROCESSES = frozenset({
    "hydra_pmi_proxy", "mpiexec", "mpiexec.hydra", "mpirun", "prterun", "prted", "orted", "orterun", "srun",
    "slurmstepd", "flux-shell",
})  # fmt: skip


def _is_ancestor(pid: int) -> bool:
    """Whether ``pid`` is the parent of this process or one of its ancestors with no launcher process between
    (True where ``/proc`` cannot tell)."""
    current = _os.getppid()
    for _ in range(64):
        if current == pid:
            return True
        if current <= 1:
            return False
        try:
            with open(f"/proc/{current}/comm") as fh:
                if fh.read().strip() in LAUNCHER_PROCESSES:
                    return False
            with open(f"/proc/{current}/stat") as fh:
                current = int(fh.read().rsplit(")", 1)[1].split()[1])  # the field after the state: the ppid
        except (OSError, ValueError, IndexError):
            return not _os.path.isdir("/proc/self")
    return False


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@_contextlib.contextmanager
def mpi_init_environment() -> _Iterator[None]:
    """Around MPI's initialisation in a process no launcher started, keep MPI off shared memory (then restore); after
    any process's, remove the names of MPICH's shared-memory segments (:func:`unlink_segment_names`).

    Open MPI 5 (5.0.11 checked) leaves a 16 MiB ``/dev/shm/sm_segment.*`` file behind every process that
    initialises MPI on its own (a singleton: no launcher registers its cleanup; open-mpi/ompi#13261), and probing
    its network transports takes a second. A singleton has no peer on its node, so ``OMPI_MCA_btl=self,tcp``,
    unless the user chose the transports. MPI reads the variable in ``MPI_Init``; it is removed right after, so the
    programs this process starts (an ``mpiexec``, say) do not inherit it. MPICH ignores it.

    In a process a rank started (:func:`started_by_rank`) the launcher's variables are the rank's: they are removed
    for good, and MPI starts as a singleton there.
    """
    drop_inherited_job()
    mark_rank()
    singleton = not launched() and "OMPI_MCA_btl" not in _os.environ
    if singleton:
        _os.environ["OMPI_MCA_btl"] = "self,tcp"
    try:
        yield
    finally:
        if singleton:
            _os.environ.pop("OMPI_MCA_btl", None)
    unlink_segment_names()  # MPI is initialised: the import succeeded


#: MPICH names the segment each node's ranks share ``/dev/shm/mpich_shm_*`` (a singleton has one too) and removes the
#: name only in MPI_Finalize, so every job that was killed or aborted left one per host. Every rank of the node has
#: mapped it by the time MPI_Init returns (MPICH's initialisation ends in a barrier of the node's ranks), so the name
#: can go then: the memory lives on until the last rank unmaps it or exits. Other MPIs' segments (Open MPI's
#: sm_segment.*) are left alone: when their peers attach to them is not known here.
_SEGMENT_PREFIXES = ("/dev/shm/mpich_shm_",)
#: the segments of a process that MPI started alone although a launcher started it (a launcher of another MPI): no
#: peer will attach to them
SINGLETON_SEGMENT_PREFIXES = (*_SEGMENT_PREFIXES, "/dev/shm/sm_segment.")


def unlink_segment_names(prefixes: tuple[str, ...] = _SEGMENT_PREFIXES) -> list[str]:
    """Remove the names of the MPI shared-memory segments this process has mapped; return the paths removed.

    Only once MPI is initialised (every rank of the node has attached by then); before, there is nothing to find.
    Idempotent: another rank of the node may have removed a name first.
    """
    paths = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith(prefixes):
                    paths.add(fields[5].rstrip("\n"))
    except OSError:  # not Linux
        return []
    removed = []
    for path in sorted(paths):
        if path.endswith(" (deleted)"):
            continue
        try:
            _os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed
