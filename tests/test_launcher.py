"""hpc._launcher: the one place that reads the MPI launchers' environment variables."""

from __future__ import annotations

import os

import pytest

from hpc import _launcher


def test_child_environment_drops_the_job_keeps_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job started from inside a job gets none of the outer job's variables (Hydra's, Open MPI's, PMIx's), but
    keeps the user's own settings and Open MPI's consent to run as root."""
    env = {
        "PMI_RANK": "1", "PMI_FD": "7", "PMIX_RANK": "1", "HYDRA_CONTROL_FD": "9", "MPI_LOCALRANKID": "1",
        "OMPI_COMM_WORLD_RANK": "1", "OMPI_MCA_ess": "pmi", "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "PRTE_MCA_hwloc_default_binding_policy": "none", "HPC_MPI_TIMEOUT": "5",
        "PATH": "/bin", "MPIR_CVAR_X": "1", "HYDRA_IFACE": "lo",
    }  # fmt: skip
    kept = _launcher.child_environment(env)
    assert kept == {
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "PRTE_MCA_hwloc_default_binding_policy": "none", "HPC_MPI_TIMEOUT": "5", "PATH": "/bin", "MPIR_CVAR_X": "1",
        "HYDRA_IFACE": "lo",  # Hydra gives ranks no HYDRA_* but its control channel: this is the user's setting
    }  # fmt: skip
    monkeypatch.setenv("PMI_RANK", "3")
    assert "PMI_RANK" not in _launcher.child_environment()  # default: this process's environment


def test_an_empty_rank_variable_is_no_launcher(monkeypatch):
    """OMPI_COMM_WORLD_RANK= (empty) made detect() and hpc info say "launched by Open MPI" while launched() said no."""
    for key in list(os.environ):
        if key.startswith(_launcher.JOB_VARIABLE_PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "")
    assert _launcher.detect() is None and not _launcher.launched()


def test_outside_a_job_the_users_launcher_settings_are_no_launcher_and_stay(monkeypatch):
    """HYDRA_* (mpiexec's settings: Hydra gives ranks none) read as a launcher, and every HYDRA_/OMPI_/PMIX_
    variable was dropped from the environment of jobs hpc starts from a plain process (hpc bench mpi lost
    HYDRA_IFACE and OMPI_MCA_* settings, which a cluster may need)."""
    user = {"HYDRA_IFACE": "lo", "HYDRA_DEBUG": "1", "OMPI_MCA_btl_tcp_if_include": "lo", "PMIX_MCA_gds": "hash"}
    for key in [k for k in os.environ if k.startswith(("PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "HYDRA_", "SLURM_"))]:
        monkeypatch.delenv(key)
    for key, value in user.items():
        monkeypatch.setenv(key, value)
    assert _launcher.detect() is None and not _launcher.launched()
    kept = _launcher.child_environment()
    assert {k: kept.get(k) for k in user} == user
