"""The processes backend across fork and multiprocessing children: no inherited executor, no wait at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")


def _run(tmp_path, source: str) -> str:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(source))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.timeout(180)
def test_a_forked_child_runs_the_processes_backend_the_parent_used(tmp_path):
    """The child of os.fork inherited the parent's executor object without its threads or workers: its first run
    waited forever. It now starts workers of its own."""
    out = _run(tmp_path, """
        import os
        from hpc import par_range
        assert par_range(100).map(lambda x: x * 2).with_backend("processes").sum() == 9900
        pid = os.fork()
        if pid == 0:
            import faulthandler
            faulthandler.dump_traceback_later(60, exit=True)  # the former hang fails the test instead
            ok = par_range(100).map(lambda x: x * 3).with_backend("processes").sum() == 14850
            from hpc.iter.plumbing.processes import shutdown_executor
            shutdown_executor()  # os._exit skips every cleanup: the child's own workers would idle on
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent again", par_range(100).map(lambda x: x).with_backend("processes").sum())
    """)
    assert "child 0" in out and "parent again 4950" in out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_child_using_processes_exits_when_done(tmp_path, method):
    """A multiprocessing child skips atexit, and its exit joins its children: it waited for our idle workers'
    300 s timeout. A finalizer now ends them first; the child's exit code is there within the join."""
    out = _run(tmp_path, f"""
        import multiprocessing as mp
        from hpc import par_range

        def child(q):
            q.put(par_range(100).map(lambda x: x).with_backend("processes").sum())

        if __name__ == "__main__":
            ctx = mp.get_context("{method}")
            q = ctx.Queue()
            p = ctx.Process(target=child, args=(q,))
            p.start()
            result = q.get(timeout=60)
            p.join(60)
            print("result", result, "exitcode", p.exitcode)
            if p.exitcode is None:
                p.kill()
    """)
    assert "result 4950 exitcode 0" in out
