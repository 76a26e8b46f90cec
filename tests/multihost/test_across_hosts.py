"""Across test hosts (scripts/multihost.sh): the same bits as on one host, and each node sees its own ranks.

``make test-multihost`` runs these (``HPC_MULTIHOST=1``; root and ``ip netns`` needed): one job of 4 ranks with a
plain ``mpiexec -n 4`` on this host, and the same job on 2 test hosts x 2 ranks. ``job.py`` is the job.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("HPC_MULTIHOST") != "1",
    reason="make test-multihost runs these (HPC_MULTIHOST=1; needs root and ip netns for scripts/multihost.sh)",
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
JOB = [sys.executable, str(pathlib.Path(__file__).with_name("job.py"))]
MPIEXEC = str(pathlib.Path(sys.executable).with_name("mpiexec"))


def _run(command: list[str], out: pathlib.Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "MPI_"))}
    proc = subprocess.run(command + [str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def one_host(tmp_path_factory):
    """The job's report from 4 ranks on this host."""
    return _run([MPIEXEC, "-n", "4", *JOB], tmp_path_factory.mktemp("one") / "report.json")


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    """The job's report from 2 test hosts x 2 ranks."""
    harness = [str(ROOT / "scripts" / "multihost.sh"), "--hosts", "2", "--ppn", "2", "--timeout", "240", "--"]
    return _run([*harness, *JOB], tmp_path_factory.mktemp("two") / "report.json")


def test_reproducible_sums_and_fits_give_the_same_bits_on_two_hosts_as_on_one(one_host, two_hosts):
    """Reproducible sums (shared-memory window on one host, messages across hosts), an exact integer sum (in
    blocks on one host, one call across), a KMeans fit and a StandardScaler fit: bit for bit the same."""
    assert two_hosts["bits"] == one_host["bits"]


def test_each_test_host_reports_its_own_two_ranks(two_hosts):
    """Ranks 0, 1 on hpcmh-1 and 2, 3 on hpcmh-2: local ranks 0 and 1 on each, by hpc.mpi (a shared-memory split)
    and hpc.cuda (the launcher's variables) alike, and no rank believes the job is on one node."""
    ranks = two_hosts["ranks"]
    assert [r["host"] for r in ranks] == ["hpcmh-1", "hpcmh-1", "hpcmh-2", "hpcmh-2"]
    assert [r["local_rank"] for r in ranks] == [0, 1, 0, 1]
    assert [r["cuda_local_rank"][:2] for r in ranks] == [[0, 2], [1, 2], [0, 2], [1, 2]]
    assert [r["bind_rank"][:2] for r in ranks] == [[0, 2], [1, 2], [0, 2], [1, 2]]
    assert [r["bind_rank"][3] for r in ranks] == [r["host"] for r in ranks]
    assert not any(r["one_node"] for r in ranks)


def test_one_host_reports_four_ranks_on_one_node(one_host):
    """The same job on one host: local ranks 0..3 by both views, and every rank knows the job is on one node."""
    ranks = one_host["ranks"]
    assert len({r["host"] for r in ranks}) == 1
    assert [r["local_rank"] for r in ranks] == [0, 1, 2, 3]
    assert [r["cuda_local_rank"][:2] for r in ranks] == [[0, 4], [1, 4], [2, 4], [3, 4]]
    assert all(r["one_node"] for r in ranks)


def test_hpc_bench_mpi_across_two_hosts():
    """`hpc bench mpi --hosts 2` runs its 2 ranks on two test hosts, and every contestant's results are right there
    (ours against raw, reproducible against plain, fused floats and arrays): the shape of the report, no timings."""
    from hpc.bench import mpi as bench_mpi

    results = bench_mpi.run(scale=0.05, hosts=2, timeout=240)
    assert sorted(set(results["machine"]["rank_hosts"])) == ["hpcmh-1", "hpcmh-2"]
    assert all(row["rows"][label]["ok"] for row in results["sizes"] for label in row["rows"])
    assert results["fused"]["ok"] and all(kind["ok"] for kind in results["fused_kinds"].values())
    assert "on 2 hosts (hpcmh-1, hpcmh-2)" in bench_mpi.format_table(results).splitlines()[0]
