"""hpc bench mpi on a tiny configuration, launched through mpiexec: the shape of its JSON and table, never timings."""

from __future__ import annotations

import json
import math
import os

import pytest

from hpc import bench
from hpc.bench import mpi as bench_mpi

CONTESTANTS = ("raw Allreduce", "raw allreduce (pickle)", "ours", "ours out=", "ours reproducible",
               "raw Allreduce(MAX)", "ours max")
FUSED = ("fused (1 block)", "separate (100 calls)", "raw: 1 Allreduce of 100", "raw: 100 Allreduce of 1")


def _positive_finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny run through ``hpc.bench.main`` (it launches ``mpiexec -n 2``); its JSON and printed table."""
    problem = bench_mpi.unavailable()
    if problem:
        pytest.skip(problem)
    path = tmp_path_factory.mktemp("bench-mpi") / "mpi.json"
    status = bench.main(["mpi", "--tiny", "--json", str(path)])  # run() kills the job after 90 s
    assert status == 0
    return json.loads(path.read_text())["mpi"]


def test_json_has_machine_settings_and_two_sizes(tiny):
    """The JSON records the machine, the MPI library and mpi4py version, 2 ranks and the two tiny sizes."""
    machine = tiny["machine"]
    assert machine["cores"] == os.cpu_count() and machine["date"] and machine["ranks"] == 2
    assert machine["mpi_library"] and machine["versions"]["mpi4py"]
    assert tiny["settings"]["sizes"] == list(bench_mpi.SIZES_TINY)
    assert [row["bytes"] for row in tiny["sizes"]] == list(bench_mpi.SIZES_TINY)


def test_every_contestant_has_positive_finite_times(tiny):
    """Each size has every contestant with positive finite times, bandwidths and a correct result."""
    repeats = tiny["settings"]["repeats"]
    for size in tiny["sizes"]:
        assert set(size["rows"]) == set(CONTESTANTS)
        for label, row in size["rows"].items():
            assert row["ok"], (size["bytes"], label)
            assert _positive_finite(row["seconds"]) and _positive_finite(row["us"]), (size["bytes"], label)
            assert len(row["runs"]) == repeats and all(_positive_finite(t) for t in row["runs"])
            assert row["iterations"] >= 1
            assert _positive_finite(row["algbw_gbs"]) and row["busbw_gbs"] == pytest.approx(row["algbw_gbs"])
        for label in ("ours", "ours out="):
            check = size["vs_raw"][label]
            assert math.isfinite(check["minus_raw_us"]) and _positive_finite(check["over_raw"])
            assert isinstance(check["pass"], bool)
        assert _positive_finite(size["repro_over_plain"]) and size["repro_pass"] is None  # both sizes < 1 MiB
        assert _positive_finite(size["max_over_raw"])  # float max through its keys, against raw MAX


def test_fused_overhead_and_targets_are_reported(tiny):
    """The fused-vs-separate rows, the speedup, the per-call overheads and the four target lines are present."""
    fused = tiny["fused"]
    assert fused["ok"] and set(fused["rows"]) == set(FUSED)
    assert all(_positive_finite(row["seconds"]) for row in fused["rows"].values())
    assert _positive_finite(fused["speedup"]) and isinstance(fused["pass"], bool)
    assert all(_positive_finite(ns) for ns in tiny["call_overhead_ns"].values())
    kinds = tiny["fused_kinds"]
    assert set(kinds) == {label for label, _, _, _ in bench_mpi.FUSED_KINDS}
    assert all(kind["ok"] and _positive_finite(kind["speedup"]) for kind in kinds.values())
    assert len(tiny["targets"]) == 4 + sum(target is not None for _, _, _, target in bench_mpi.FUSED_KINDS)
    assert all(kinds[label]["pass"] is None for label, _, _, target in bench_mpi.FUSED_KINDS if target is None)
    assert tiny["targets"]["reproducible <= 2x plain at >= 1 MiB"]["pass"] is None  # no size reaches 1 MiB


def test_format_table_shows_each_section(tiny):
    """The table has the latency, bandwidth, fused, overhead and target sections."""
    table = bench_mpi.format_table(tiny)
    for heading in ("latency (us)", "float max (ours: integer keys", "bandwidth (GB/s",
                    "100 scalar float sums", "fused entries of other kinds",
                    "1 KiB float64 arrays", "per-call cost", "targets"):
        assert heading in table
    assert "64 KiB" in table and "8 B" in table


def test_missing_mpiexec_is_a_clear_error(monkeypatch, capsys):
    """Without mpiexec, ``hpc bench mpi`` exits with status 2 and says what to install."""
    monkeypatch.setattr(bench_mpi, "find_mpiexec", lambda: None)
    monkeypatch.setattr(bench_mpi, "_inside_job_of_two", lambda: False)
    assert bench.main(["mpi", "--tiny"]) == 2
    assert "needs mpiexec" in capsys.readouterr().err


def test_run_rejects_a_bad_scale():
    """A non-positive scale is refused before anything is launched."""
    with pytest.raises(ValueError, match="scale must be a positive number"):
        bench_mpi.run(True, scale=0)


def test_hosts_other_than_two_are_refused():
    """--hosts takes 2 (one rank per test host); anything else is refused before the harness is touched."""
    with pytest.raises(ValueError, match="hosts must be 2"):
        bench_mpi.run(scale=0.05, hosts=3)


def test_hosts_is_for_the_mpi_suite_only(capsys):
    assert bench.main(["kernels", "--hosts", "2", "--tiny"]) == 2
    assert "--hosts is for the mpi suite only" in capsys.readouterr().err


def test_hosts_with_another_launcher_than_hydra_say_so_before_starting(monkeypatch):
    """The harness gives mpiexec hydra's options: Open MPI's mpirun failed on them with "unrecognized option
    --launcher" and a bare exit status. It is now refused up front, naming what it needs."""
    script = bench_mpi.harness()
    if not script.is_file() or os.geteuid() != 0:
        pytest.skip("needs the source checkout's harness and root")
    monkeypatch.setattr(bench_mpi, "find_mpiexec", lambda: "/bin/true")  # any launcher but hydra
    problem = bench_mpi._harness_problem()
    if problem is not None and "not MPICH's hydra" not in problem:
        pytest.skip(f"the harness cannot run here for another reason: {problem}")
    assert problem is not None and "/bin/true is not MPICH's hydra launcher" in problem
