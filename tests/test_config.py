"""Tests for hpc.config: every HPC_* variable's default, accepted values and error messages."""

from __future__ import annotations

import os

import pytest

from hpc import config
from hpc.config import ConfigError

# variable -> (reader, default, [(raw, parsed)], [bad raw values], words of the allowed-values phrase)
CASES = {
    "HPC_NUM_THREADS": (
        config.num_threads,
        None,  # the affinity mask; checked separately
        [("1", 1), ("3", 3), (" 16 ", 16), ("4096", 4096)],
        # a million threads took 11 s and 800 MB to start; int() alone took "1_0" as 10
        ["zero", "0", "-2", "1.5", "2x", "4097", "1000000", "1_0", "+4", "\u0664"],
        "a positive integer, at most 4096",
    ),
    "HPC_BACKEND": (
        config.backend,
        "auto",
        [(b, b) for b in config.BACKENDS] + [("THREADS", "threads"), (" serial ", "serial")],
        ["gpu", "thread", "0"],
        "one of auto, threads, processes, serial, mpi",
    ),
    "HPC_DEVICE": (
        config.device,
        "auto",
        [(d, d) for d in config.DEVICES] + [("CPU", "cpu")],
        ["gpu", "tpu", "cuda:0"],
        "one of auto, cpu, cuda",
    ),
    "HPC_MPI_CHECK": (config.mpi_check, False, [("0", False), ("1", True)], ["yes", "2", "true"], "0 or 1"),
    "HPC_MPI_TIMEOUT": (
        config.mpi_timeout,
        0.0,
        [("0", 0.0), ("2.5", 2.5), ("30", 30.0)],
        ["-1", "inf", "nan", "soon", "1_0", "1e-400"],  # 1e-400 underflows to 0.0: the watchdog off
        "a non-negative number of seconds",
    ),
    "HPC_CUDA_LEAKCHECK": (config.cuda_leakcheck, False, [("0", False), ("1", True)], ["on", "-1"], "0 or 1"),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch):
    for name in CASES:
        monkeypatch.delenv(name, raising=False)
    config.set_num_threads(None)
    yield
    config.set_num_threads(None)


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_when_unset_or_blank(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset or blank variable gives the documented default."""
    reader, default, *_ = CASES[name]
    expected = len(os.sched_getaffinity(0)) if default is None else default
    assert reader() == expected
    monkeypatch.setenv(name, "  ")
    assert reader() == expected


@pytest.mark.parametrize(("name", "raw", "parsed"), [(n, r, p) for n, c in CASES.items() for r, p in c[2]])
def test_valid_values_parse(name: str, raw: str, parsed: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every accepted spelling parses to its value, read afresh on each call."""
    monkeypatch.setenv(name, raw)
    value = CASES[name][0]()
    assert value == parsed
    assert type(value) is type(parsed)


@pytest.mark.parametrize(("name", "raw"), [(n, r) for n, c in CASES.items() for r in c[3]])
def test_bad_values_raise_config_error(name: str, raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value raises ConfigError naming the variable, the value and what is allowed."""
    reader, *_, allowed = CASES[name]
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError) as info:
        reader()
    message = str(info.value)
    assert name in message
    assert repr(raw) in message
    assert allowed in message
    assert isinstance(info.value, ValueError)


def test_default_num_threads_is_the_affinity_mask() -> None:
    """Without HPC_NUM_THREADS the pool size is the number of CPUs this process may run on."""
    assert config.num_threads() == config.available_cpus() == len(os.sched_getaffinity(0))


def test_set_num_threads_overrides_env_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    """set_num_threads wins over HPC_NUM_THREADS, and None returns to the environment."""
    monkeypatch.setenv("HPC_NUM_THREADS", "5")
    config.set_num_threads(3)
    assert config.num_threads() == 3
    config.set_num_threads(None)
    assert config.num_threads() == 5


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "2", 4097, 10**6])
def test_set_num_threads_rejects_non_positive_ints(bad: object) -> None:
    """set_num_threads rejects anything but a positive int or None, naming the parameter and the value."""
    with pytest.raises(ConfigError) as info:
        config.set_num_threads(bad)  # type: ignore[arg-type]
    assert "num_threads" in str(info.value)
    assert repr(bad) in str(info.value)
    assert config.num_threads() == config.available_cpus()


def test_snapshot_has_every_setting_and_fails_on_a_bad_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """snapshot() reports every setting and raises ConfigError for the first bad variable."""
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    snap = config.snapshot()
    assert snap == {
        "num_threads": config.available_cpus(),
        "backend": "auto",
        "device": "auto",
        "mpi_check": False,
        "mpi_timeout": 0.0,
        "cuda_leakcheck": False,
        "cuda_cache": os.path.expanduser("~/.cache/hpc/cuda"),
    }
    monkeypatch.setenv("HPC_MPI_TIMEOUT", "later")
    with pytest.raises(ConfigError, match="HPC_MPI_TIMEOUT"):
        config.snapshot()


def test_cuda_cache_directory(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """HPC_CUDA_CACHE names the directory; unset or empty, XDG_CACHE_HOME's hpc/cuda, else ~/.cache/hpc/cuda."""
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HPC_CUDA_CACHE", "")
    assert config.cuda_cache() == os.path.expanduser("~/.cache/hpc/cuda")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert config.cuda_cache() == str(tmp_path / "hpc" / "cuda")
    monkeypatch.setenv("HPC_CUDA_CACHE", str(tmp_path / "cubins"))
    assert config.cuda_cache() == str(tmp_path / "cubins")


def test_timeout_and_cache_values_at_their_edges(monkeypatch):
    """Other scripts' digits were taken as a timeout ('١٢' as 12) and '-0' shown as -0.0; '~' in HPC_CUDA_CACHE was a
    literal directory, a blank value a directory of spaces, and a relative XDG_CACHE_HOME was used (XDG: ignored)."""
    import os

    from hpc import config

    monkeypatch.setenv("HPC_MPI_TIMEOUT", "\u0661\u0662")
    with pytest.raises(config.ConfigError, match="HPC_MPI_TIMEOUT"):
        config.mpi_timeout()
    monkeypatch.setenv("HPC_MPI_TIMEOUT", "-0")
    assert str(config.mpi_timeout()) == "0.0"
    monkeypatch.setenv("HPC_CUDA_CACHE", "~/kernels")
    assert config.cuda_cache() == os.path.join(os.path.expanduser("~"), "kernels")
    monkeypatch.setenv("HPC_CUDA_CACHE", "  ")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert config.cuda_cache() == os.path.join(os.path.expanduser("~"), ".cache", "hpc", "cuda")
