"""Bind each MPI rank to one GPU of its node, like ``CUDA_VISIBLE_DEVICES=$LOCAL_RANK`` done in-process.

Call :func:`bind_rank` before heavy MPI or GPU use: the rank's local index on its node (read from the launcher's
variables, else from a shared-memory split of the communicator) picks ``local_rank % device_count``, which becomes
the default device of every thread of the process. This module never imports :mod:`hpc.mpi`; it takes any
communicator with ``.rank``/``.size`` (and ``.mpi`` for the raw one) or an mpi4py communicator.
"""

from __future__ import annotations

import dataclasses as _dataclasses
import socket as _socket
from typing import Any as _Any

from hpc import _launcher
from hpc._launcher import LOCAL_RANK_VARIABLES
from hpc._optional import optional_module
from hpc.cuda import context
from hpc.cuda.device import device_count, devices, unavailable_reason

__all__ = ["Binding", "LOCAL_RANK_VARIABLES", "bind_rank", "local_rank"]


@_dataclasses.dataclass(frozen=True)
class Binding:
    """Which GPU a rank uses and why.

    Attributes:
        rank (int), size (int): the rank in the communicator and its size (0 and 1 without one).
        local_rank (int), local_size (int or None): the rank's index on its node and the ranks on the node.
        source (str): where ``local_rank`` came from: a variable name, ``"shared-memory split"`` or ``"default"``.
        device (int): the device index now the process default.
        device_count (int): the GPUs this process can see (0 on the host fallback).
        device_name (str): the GPU's name, or the reason there is none.
        host (str): the node's host name.
    """

    rank: int
    size: int
    local_rank: int
    local_size: int | None
    source: str
    device: int
    device_count: int
    device_name: str
    host: str

    @property
    def oversubscribed(self) -> bool:
        """bool: more ranks on this node than GPUs, so some GPUs are shared."""
        return bool(self.device_count and self.local_size and self.local_size > self.device_count)

    def __str__(self) -> str:
        local = f"{self.local_rank}/{self.local_size}" if self.local_size else f"{self.local_rank}"
        where = (
            f"GPU {self.device} of {self.device_count} ({self.device_name})"
            if self.device_count
            else f"host fallback ({self.device_name})"
        )
        note = "; oversubscribed: ranks share GPUs" if self.oversubscribed else ""
        return f"rank {self.rank}/{self.size} on {self.host}: local rank {local} (from {self.source}) -> {where}{note}"


def _raw(comm: _Any) -> _Any:
    return getattr(comm, "mpi", comm)


def _rank_size(comm: _Any) -> tuple[int, int]:
    if comm is None:
        return 0, 1
    if hasattr(comm, "rank") and hasattr(comm, "size"):
        return int(comm.rank), int(comm.size)
    raw = _raw(comm)
    if not (hasattr(raw, "Get_rank") and hasattr(raw, "Get_size")):
        raise TypeError(f"comm must be an hpc.mpi communicator, an mpi4py communicator or None; got {comm!r}")
    return int(raw.Get_rank()), int(raw.Get_size())


def local_rank(comm: _Any = None) -> tuple[int, int | None, str]:
    """Return ``(local_rank, local_size, source)`` for this process.

    The launcher's variables (:data:`LOCAL_RANK_VARIABLES`) win; without them and with a communicator, a
    shared-memory split (``Split_type(COMM_TYPE_SHARED)``, needs mpi4py) decides; else ``(0, None, "default")``.

    .. note:: The split is a collective: every rank of ``comm`` must call this together.

    .. versionadded:: 0.1.0
    """
    found = _launcher.find()
    if found is not None:
        rank_var, value, size_text = found
        if not (value.isascii() and value.isdigit()):  # int() would take "1_0" as 10, "+2", and other scripts' digits
            raise ValueError(f"{rank_var} must be a non-negative integer; got {value!r}")
        local = int(value)
        # the launcher module's size, as hpc.mpi reads it: srun's SLURM_NTASKS_PER_NODE is what was asked for, not
        # what runs on this node, and is not a size
        return local, _launcher.local_size(), rank_var
    raw = _raw(comm)
    mpi4py = optional_module("mpi4py.MPI")
    if comm is not None and mpi4py is not None and hasattr(raw, "Split_type"):
        node = raw.Split_type(mpi4py.COMM_TYPE_SHARED)
        try:
            return int(node.Get_rank()), int(node.Get_size()), "shared-memory split"
        finally:
            node.Free()
    return 0, None, "default"


def bind_rank(comm: _Any = None, *, report: bool = False) -> Binding:
    """Make GPU ``local_rank % device_count`` this process's default device and return the :class:`Binding`.

    Args:
        comm (object or None): an ``hpc.mpi`` communicator (``.rank``, ``.size``, ``.mpi``), a raw mpi4py
            communicator, or ``None`` (launcher variables only).
        report (bool): also print the binding, one line per rank.

    This affects the whole process; there is no per-thread isolation (``with Device(i):`` blocks still win).
    On the host fallback it binds device 0 and says so; under ``HPC_DEVICE=cuda`` without a usable GPU it raises
    RuntimeError, as every other call does.

    .. versionadded:: 0.1.0
    """
    from hpc.cuda import _backend

    _backend.get()  # HPC_DEVICE=cuda without a usable GPU raises here, as every other hpc.cuda call does
    rank, size = _rank_size(comm)
    local, local_size, source = local_rank(comm)
    count = device_count()
    index = local % count if count else 0
    name = devices()[index].name if count else unavailable_reason()
    context._set_default(index)
    binding = Binding(rank, size, local, local_size, source, index, count, name, _socket.gethostname())
    if report:
        print(binding, flush=True)
    return binding
