"""Tests for hpc.info: the machine report and its text form."""

from __future__ import annotations

import json
import os
import platform

import pytest

from hpc import config, cuda, info

SECTIONS = {"hpc", "process", "cpu", "simd", "caches", "numba", "numpy", "python", "config", "mpi", "gpus"}
LAUNCHER_VARS = (
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "PMI_RANK",
    "PMI_SIZE",
    "PMIX_RANK",
    "MPI_LOCALRANKID",
    "MPI_LOCALNRANKS",
    "PMI_FD",
    "PMI_PORT",
    "SLURM_NTASKS",
)


@pytest.fixture(scope="module")
def report() -> dict:
    return info.collect()


def test_collect_has_every_section_and_is_json(report: dict) -> None:
    """collect() returns every section, and the report survives a JSON round trip unchanged."""
    assert set(report) == SECTIONS
    assert json.loads(json.dumps(report)) == report
    assert isinstance(report["hpc"], str) and report["hpc"]


def test_cpu_counts_match_the_os(report: dict) -> None:
    """Logical cores equal os.cpu_count(), physical cores lie between 1 and that, the mask is the affinity."""
    cpu = report["cpu"]
    assert cpu["logical_cores"] == os.cpu_count()
    assert 1 <= cpu["physical_cores"] <= cpu["logical_cores"]
    assert cpu["affinity_cpus"] == len(os.sched_getaffinity(0))
    assert isinstance(cpu["model"], str) and cpu["model"]


def test_simd_agrees_with_llvm(report: dict) -> None:
    """The SIMD ISA is the widest one LLVM reports for the host, and fma matches LLVM's feature map."""
    llvm = pytest.importorskip("llvmlite.binding")
    features = llvm.get_host_cpu_features()
    simd = report["simd"]
    assert simd["llvm_cpu"] == llvm.get_host_cpu_name()
    assert simd["fma"] == bool(features.get("fma"))
    ladder = ["avx512f", "avx2", "avx", "sse4.2"]
    if platform.machine() in ("x86_64", "AMD64"):
        assert simd["isa"] == next((name for name in ladder if features.get(name)), "none")
    if not features.get("avx2"):
        assert "avx2" not in info.format_report([report])


def test_caches_match_sysfs(report: dict) -> None:
    """Every readable /sys cache index is reported with its level, type and size."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    indexes = [d for d in os.listdir(base) if d.startswith("index")] if os.path.isdir(base) else []
    if not indexes:
        assert isinstance(report["caches"], str)
        return
    assert len(report["caches"]) == len(indexes)
    for cache in report["caches"]:
        assert cache["level"] in (1, 2, 3, 4)
        assert cache["type"] in ("Data", "Instruction", "Unified")
        assert cache["size"]


def test_software_versions(report: dict) -> None:
    """numba, numpy and Python versions are those of this interpreter, and numba names a threading layer."""
    import numba
    import numpy

    assert report["numba"]["version"] == numba.__version__
    assert report["numba"]["threading_layer"] in ("tbb", "omp", "workqueue")
    assert report["numpy"]["version"] == numpy.__version__
    assert report["python"]["version"] == platform.python_version()
    assert report["config"] == config.snapshot()


def test_mpi_and_process_without_launcher(report: dict) -> None:
    """Outside mpiexec the report shows rank 0 of 1, no launcher, and the MPI library version."""
    if info.detect_launcher() is not None:
        pytest.skip("running under an MPI launcher")
    mpi4py = pytest.importorskip("mpi4py")
    assert report["mpi"]["mpi4py"] == mpi4py.__version__
    assert report["mpi"]["launcher"] is None
    assert report["mpi"]["library"] and "\0" not in report["mpi"]["library"]  # Open MPI's string ends in a NUL
    proc = report["process"]
    assert (proc["rank"], proc["size"], proc["pid"]) == (0, 1, os.getpid())
    assert proc["affinity"] == sorted(os.sched_getaffinity(0))


def test_gpus_section_matches_hpc_cuda(report: dict) -> None:
    """The GPU section lists hpc.cuda's devices, or is exactly its one-line reason."""
    if cuda.is_available():
        assert report["gpus"] == [d.as_dict() for d in cuda.devices()]
    else:
        assert report["gpus"] == cuda.unavailable_reason() != ""


def test_bad_config_degrades_to_a_string(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad HPC_* value makes the config section the error line instead of raising."""
    monkeypatch.setenv("HPC_BACKEND", "quantum")
    report = info.collect()
    assert "HPC_BACKEND" in report["config"] and "'quantum'" in report["config"]


def test_format_report_names_the_cpu_model(report: dict) -> None:
    """The text report has one header, the CPU model, a GPU line and this process in the ranks table."""
    text = info.format_report([report])
    assert text.count("machine report") == 1
    assert report["cpu"]["model"] in text
    assert any(line.strip().startswith("gpus") for line in text.splitlines())
    assert str(os.getpid()) in text


def test_format_report_shows_degraded_sections_and_ranks() -> None:
    """Sections that are strings print as they are, and each rank gets a row with its CPU ranges."""
    reports = [
        {
            "hpc": "0",
            "cpu": "unavailable: OSError: no /proc",
            "gpus": "HPC_DEVICE=cpu",
            "process": {"rank": r, "hostname": "node", "pid": 100 + r, "affinity": [0, 1, 2, 5]},
        }
        for r in range(2)
    ]
    text = info.format_report(reports)
    assert "unavailable: OSError: no /proc" in text
    assert "none: HPC_DEVICE=cpu" in text
    assert "0-2,5" in text
    rows = [line.split() for line in text.splitlines() if line.strip().startswith(("0 ", "1 "))]
    assert [row[:3] for row in rows] == [["0", "node", "100"], ["1", "node", "101"]]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8", "PMIX_RANK": "3"}, ("Open MPI", 3, 8)),
        ({"PMI_RANK": "1", "PMI_SIZE": "2"}, ("Hydra (MPICH, Intel MPI)", 1, 2)),
        ({"PMIX_RANK": "0"}, ("PMIx", 0, None)),
        ({"PMI_FD": "5"}, ("Hydra (MPICH, Intel MPI)", None, None)),  # a Hydra proxy that says no rank
    ],
)
def test_detect_launcher_reads_the_environment(env: dict, expected, monkeypatch: pytest.MonkeyPatch) -> None:
    """Launcher, rank and size come from the variables each MPI launcher sets."""
    for name in LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)
    for name in [k for k in os.environ if k.startswith("HYDRA_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found = info.detect_launcher()
    assert (found and (found["name"], found["rank"], found["size"])) == expected


def test_gather_reports_without_launcher_is_a_list_of_one(report: dict) -> None:
    """A single process gathers its own report into a one-element list."""
    if info.detect_launcher() is not None:
        pytest.skip("running under an MPI launcher")
    assert info.gather_reports(report) == [report]
