"""Faults across test hosts (scripts/multihost.sh): a cut link and a killed rank end the job, and nothing is left.

``make test-multihost`` runs these (``HPC_MULTIHOST=1``; root and ``ip netns`` needed). The harness injects the
fault once ``fault_job.py``'s loop of sums is running (``--when``), names the moments in seconds since the job
started, and with ``--strict`` fails when a process outlives the job on a test host or a segment is left in a test
host's /dev/shm. Time bounds are the issue's (the job ends within HPC_MPI_TIMEOUT + 10 s of a cut, within 30 s of a
kill), well above what the 2-core development VM takes (about 6 s and 1 s).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("HPC_MULTIHOST") != "1",
    reason="make test-multihost runs these (HPC_MULTIHOST=1; needs root and ip netns for scripts/multihost.sh)",
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
JOB = [sys.executable, str(pathlib.Path(__file__).with_name("fault_job.py"))]
#: the watchdog of the link-cut job, in seconds
TIMEOUT = 5
#: seconds the processes on a test host get to leave on their own once the job has ended
STRICT = 20


@dataclass
class Run:
    """What the harness said about one job: its status, its moments (seconds since the job started) and output."""

    returncode: int
    output: str

    def moment(self, pattern: str) -> float:
        found = re.search(rf"^multihost: {pattern} at ([0-9.]+) s$", self.output, re.M)
        assert found, f"no {pattern!r} in the harness's output:\n{self.output}"
        return float(found.group(found.lastindex))

    @property
    def status(self) -> int:
        found = re.search(r"^multihost: the job ended with status (\d+) at", self.output, re.M)
        assert found, self.output
        return int(found.group(1))


def _harness(tmp_path: pathlib.Path, hosts: int, ppn: int, fault: list[str], **env: str) -> Run:
    """Run fault_job.py on the test hosts with ``fault`` (harness options) injected once its loop runs."""
    ready = tmp_path / "ready"
    harness = [
        str(ROOT / "scripts" / "multihost.sh"),
        *("--hosts", str(hosts), "--ppn", str(ppn), "--timeout", "90", "--strict", str(STRICT)),
        *fault,
        *("--when", str(ready), "--"),
    ]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "MPI_", "HPC_MPI_"))}
    proc = subprocess.run(
        [*harness, *JOB, str(ready)],
        cwd=ROOT,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
    )
    return Run(proc.returncode, proc.stdout)


def _assert_nothing_left(run: Run, hosts: int) -> None:
    """Every test host emptied itself before teardown killed anything, and no /dev/shm segment was left."""
    assert "still runs" not in run.output and "segments" not in run.output, run.output
    for host in range(1, hosts + 1):
        run.moment(f"host {host} empty")
    assert run.returncode == run.status, run.output  # 4 would mean --strict found leftovers


@pytest.mark.parametrize("check", ["0", "1"], ids=["allreduce", "checked-allreduce"])
def test_a_cut_link_is_reported_and_every_rank_leaves(tmp_path, check):
    """Host 2's link is cut mid-collective: the ranks on host 1 name the stalled collective and the missing host
    and ranks, the job ends non-zero within HPC_MPI_TIMEOUT + 10 s, and the ranks on host 2 leave on their own.

    Before, the cut host's ranks stayed forever: MPICH's MPI_Abort returned there (the launcher could not be
    reached), and the exception raised after it ended in MPI_Finalize, which waited on the launcher. A cut inside a
    step MPI has no non-blocking form of (check mode's pickled allgather, after its watched barrier) hung every rank
    with no report; a watcher thread covers those steps now.
    """
    run = _harness(tmp_path, 2, 2, ["--cut-after", "1", "2"], HPC_MPI_TIMEOUT=str(TIMEOUT), HPC_MPI_CHECK=check)
    assert run.status != 0, run.output
    assert run.moment("the job ended with status \\d+") - run.moment("cut host 2's link") < TIMEOUT + 10, run.output
    # host 2's ranks report too, but their output cannot cross the cut link
    head = r"^hpc\.mpi: allreduce \(collective #\d+\) on rank (\d) of 4 \(host (\S+)\)"
    heads = re.findall(head, run.output, re.M)
    assert heads and all(rank in "01" and host == "hpcmh-1" for rank, host in heads), run.output
    assert run.output.count("  missing: ranks 2, 3 gave no answer in 1 s (on hpcmh-2)") == len(heads), run.output
    assert run.output.count("  missing: host hpcmh-2 (ranks 2, 3): no rank there answered") == len(heads), run.output
    _assert_nothing_left(run, 2)


@pytest.mark.parametrize("hosts,ppn", [(1, 4), (2, 2)], ids=["one-host", "two-hosts"])
def test_a_killed_rank_ends_the_job(tmp_path, hosts, ppn):
    """A rank SIGKILLed mid-loop (no watchdog) ends the job non-zero within 30 s, on one host and across two, and
    leaves no shared-memory segment: MPICH kept its node segment's name until MPI_Finalize, which a killed job
    never reaches."""
    run = _harness(tmp_path, hosts, ppn, ["--kill-after", "1", str(hosts)])
    assert run.status != 0, run.output
    ended = run.moment("the job ended with status \\d+")
    assert ended - run.moment(f"killed \\d+, a rank on host {hosts},") < 30, run.output
    _assert_nothing_left(run, hosts)
