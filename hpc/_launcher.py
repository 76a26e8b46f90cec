"""What the MPI launcher says about this node, read from its environment variables (MPI is not touched)."""

from __future__ import annotations

import contextlib as _contextlib
import os as _os
from collections.abc import Iterator as _Iterator

__all__ = ["LOCAL_RANK_VARIABLES", "find", "launched", "local_size", "mpi_init_environment", "one_node"]

#: launcher variables holding the node-local rank, tried in this order, with their node-local size variable
LOCAL_RANK_VARIABLES: tuple[tuple[str, str], ...] = (
    ("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"),  # Open MPI
    ("MPI_LOCALRANKID", "MPI_LOCALNRANKS"),  # MPICH / Intel MPI (Hydra)
    ("MV2_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_SIZE"),  # MVAPICH2
    ("PALS_LOCAL_RANKID", "PALS_LOCAL_SIZE"),  # HPE Cray PALS
    ("PMI_LOCAL_RANK", "PMI_LOCAL_SIZE"),  # PMI-2 launchers
    ("SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"),  # srun
)
#: world-rank variables of launchers that may set no node-local one (PMI-1, PMIx)
_RANK_VARIABLES = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK")


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
    return int(size_text) if size_text.isdigit() and rank_var != "SLURM_LOCALID" else None


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
    return find() is not None or any(_os.environ.get(name, "").strip() for name in _RANK_VARIABLES)


@_contextlib.contextmanager
def mpi_init_environment() -> _Iterator[None]:
    """Around MPI's initialisation in a process no launcher started, keep MPI off shared memory (then restore).

    Open MPI 5 (5.0.11 checked) leaves a 16 MiB ``/dev/shm/sm_segment.*`` file behind every process that
    initialises MPI on its own (a singleton: no launcher registers its cleanup; open-mpi/ompi#13261), and probing
    its network transports takes a second. A singleton has no peer on its node, so ``OMPI_MCA_btl=self,tcp``,
    unless the user chose the transports. MPI reads the variable in ``MPI_Init``; it is removed right after, so the
    programs this process starts (an ``mpiexec``, say) do not inherit it. MPICH ignores it.
    """
    if launched() or "OMPI_MCA_btl" in _os.environ:
        yield
        return
    _os.environ["OMPI_MCA_btl"] = "self,tcp"
    try:
        yield
    finally:
        _os.environ.pop("OMPI_MCA_btl", None)
