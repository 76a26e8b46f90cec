"""Tests for hpc.cuda.binding: local rank from launcher variables or a shared-memory split, and the report."""

from __future__ import annotations

import types

import pytest

from hpc import cuda
from hpc.cuda import binding, context, device


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch):
    for rank_var, size_var in binding.LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(rank_var, raising=False)
        monkeypatch.delenv(size_var, raising=False)
    yield
    context.set_default_index(0)


@pytest.mark.parametrize(
    ("rank_var", "size_var"), [pair for pair in binding.LOCAL_RANK_VARIABLES if pair[0] != "SLURM_LOCALID"]
)
def test_launcher_variables(monkeypatch: pytest.MonkeyPatch, rank_var: str, size_var: str) -> None:
    """Each launcher's local-rank variable (and its size variable) gives the local rank and its source."""
    monkeypatch.setenv(rank_var, "3")
    monkeypatch.setenv(size_var, "4")
    assert cuda.local_rank() == (3, 4, rank_var)


def test_under_srun_the_local_size_is_unknown_as_hpc_mpi_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """srun's SLURM_NTASKS_PER_NODE is what was asked for, not what runs on the node: no size, as
    hpc._launcher.local_size (what hpc.mpi reads) says (it was taken as the size here)."""
    from hpc import _launcher

    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    assert cuda.local_rank() == (1, None, "SLURM_LOCALID") and _launcher.local_size() is None


def test_open_mpi_wins_over_later_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables are tried in the documented order; a bad value raises naming the variable."""
    monkeypatch.setenv("MPI_LOCALRANKID", "1")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "2")
    assert cuda.local_rank()[0] == 2
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "two")
    with pytest.raises(ValueError, match="OMPI_COMM_WORLD_LOCAL_RANK must be a non-negative integer; got 'two'"):
        cuda.local_rank()


class _FakeNode:
    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size, self.freed = rank, size, False

    def Get_rank(self) -> int:  # noqa: N802 - mpi4py's spelling
        return self.rank

    def Get_size(self) -> int:  # noqa: N802
        return self.size

    def Free(self) -> None:  # noqa: N802
        self.freed = True


class _FakeComm:
    """Looks like an mpi4py communicator whose shared-memory split puts this rank at local index 1 of 2."""

    def __init__(self) -> None:
        self.node = _FakeNode(1, 2)
        self.split_kinds: list[object] = []

    def Get_rank(self) -> int:  # noqa: N802
        return 5

    def Get_size(self) -> int:  # noqa: N802
        return 8

    def Split_type(self, kind: object) -> _FakeNode:  # noqa: N802
        self.split_kinds.append(kind)
        return self.node


def test_shared_memory_split_without_variables() -> None:
    """Without launcher variables a raw communicator is split by shared memory and the split is freed."""
    pytest.importorskip("mpi4py.MPI")
    comm = _FakeComm()
    assert cuda.local_rank(comm) == (1, 2, "shared-memory split")
    assert comm.node.freed and len(comm.split_kinds) == 1


def test_hpc_style_comm_uses_dot_mpi() -> None:
    """An object with .rank, .size and .mpi is read for rank/size and split through .mpi."""
    pytest.importorskip("mpi4py.MPI")
    wrapper = types.SimpleNamespace(rank=5, size=8, mpi=_FakeComm())
    b = cuda.bind_rank(wrapper)
    assert (b.rank, b.size, b.local_rank, b.local_size, b.source) == (5, 8, 1, 2, "shared-memory split")


def test_no_comm_no_variables_is_rank_zero() -> None:
    """With neither a communicator nor variables the binding is local rank 0 from 'default'."""
    b = cuda.bind_rank()
    assert (b.rank, b.size, b.local_rank, b.local_size, b.source) == (0, 1, 0, None, "default")


def test_bind_rank_report_on_fallback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """On the host fallback the binding is device 0 and the printed report says why there is no GPU."""
    if cuda.is_available():
        pytest.skip("checks the host fallback; this machine has a GPU")
    monkeypatch.setenv("MPI_LOCALRANKID", "3")
    monkeypatch.setenv("MPI_LOCALNRANKS", "4")
    b = cuda.bind_rank(report=True)
    assert b.device == 0 and b.device_count == 0 and not b.oversubscribed
    line = capsys.readouterr().out.strip()
    assert line == str(b)
    assert "local rank 3/4 (from MPI_LOCALRANKID) -> host fallback (" in line


def test_binding_maps_modulo_device_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 2 GPUs, local rank 3 of 4 gets GPU 1, becomes the process default, and is flagged oversubscribed."""
    info = [cuda.DeviceInfo(i, f"Fake GPU {i}", (9, 0), 1 << 30, 132, 1_980_000, f"0000:{i}") for i in range(2)]
    monkeypatch.setattr(binding, "device_count", lambda: 2)
    monkeypatch.setattr(binding, "devices", lambda: info)
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4")
    b = cuda.bind_rank()
    assert (b.device, b.device_count, b.device_name) == (1, 2, "Fake GPU 1")
    assert context.default_index() == 1
    assert b.oversubscribed and "GPU 1 of 2 (Fake GPU 1); oversubscribed" in str(b)
    assert device.device_count() in (0, 1, 2)  # the real probe is untouched


def test_negative_local_rank_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A negative local rank is as wrong as a non-number: ValueError naming the variable."""
    monkeypatch.setenv("SLURM_LOCALID", "-1")
    with pytest.raises(ValueError, match="SLURM_LOCALID must be a non-negative integer; got '-1'"):
        cuda.bind_rank()


def test_bind_rank_refuses_what_is_no_communicator() -> None:
    with pytest.raises(TypeError, match="comm must be"):
        cuda.bind_rank(42)


def test_a_local_size_of_other_digits_is_no_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """'²' passes str.isdigit but not int(): it is read as no size, not a crash."""
    from hpc import _launcher

    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "\u00b2")
    assert _launcher.local_size() is None


@pytest.mark.parametrize("text", ["1_0", "+2", "\u0663", "2.0"])
def test_a_local_rank_int_would_misread_is_refused(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """int() took "1_0" as 10, "+2" as 2 and an Arabic-Indic three as 3; ASCII digits only, as for the sizes."""
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", text)
    with pytest.raises(ValueError, match="OMPI_COMM_WORLD_LOCAL_RANK must be a non-negative integer"):
        cuda.bind_rank()
