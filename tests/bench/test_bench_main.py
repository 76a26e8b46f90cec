"""``hpc bench`` itself: output paths, the JSON file, --plot, the machine facts, and the timing helper's edge cases."""

from __future__ import annotations

import json
import sys
import types

import pytest

from hpc import bench
from hpc.bench import _plot, _timing

STUB = "hpc_tests_stub_suite"


@pytest.fixture
def stub(monkeypatch):
    """Make ``hpc bench roofline`` run a stub suite that records its runs and returns ``stub.result``."""
    module = types.ModuleType(STUB)
    module.runs = []
    module.result = {"value": 1.0}

    def run(quick, **kwargs):
        module.runs.append(quick)
        return module.result

    module.run = run
    module.format_table = lambda results: "stub table"
    monkeypatch.setitem(sys.modules, STUB, module)
    monkeypatch.setitem(bench.SUITES, "roofline", STUB)
    return module


def test_unwritable_json_path_is_refused_before_running(stub, tmp_path, capsys):
    """--json into a missing folder or onto a folder exits 2 with the path named, before any benchmark runs."""
    missing = tmp_path / "no-such-dir" / "out.json"
    assert bench.main(["roofline", "--json", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert bench.main(["roofline", "--json", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert bench.main(["roofline", "--plot", str(missing)]) == 2
    assert stub.runs == []


def test_a_failed_json_write_leaves_the_old_file_whole(stub, tmp_path):
    """A result that cannot be written as JSON leaves no partial file: an existing file keeps its old content."""
    path = tmp_path / "out.json"
    path.write_text('{"old": true}\n')
    stub.result = {"value": object()}
    with pytest.raises(TypeError):
        bench.main(["roofline", "--json", str(path)])
    assert json.loads(path.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_json_of_a_suite_without_machine_facts_gets_them(tmp_path, capsys):
    """`hpc bench roofline --json FILE` records the machine it ran on, like every other suite."""
    path = tmp_path / "roofline.json"
    assert bench.main(["roofline", "--quick", "--tiny", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    machine = data["roofline"]["machine"]
    assert machine["python"] and machine["date"] and machine["cpu"]["logical_cores"] >= 1
    assert "ceilings" in data["roofline"]


def test_plot_of_a_suite_without_a_chart_is_refused_before_running(stub, tmp_path, capsys):
    """--plot on a suite with no chart (roofline) exits 2 and says which suites have one; nothing runs."""
    assert bench.main(["roofline", "--plot", str(tmp_path / "r.png")]) == 2
    assert "no chart" in capsys.readouterr().err
    assert stub.runs == [] and not (tmp_path / "r.png").exists()


def test_plot_draws_mpi_latency_and_reports_nothing_to_draw(tmp_path):
    """The generic chart draws an mpi-shaped result, and returns False (no file) for a result it cannot draw."""
    pytest.importorskip("matplotlib")
    rows = {"raw Allreduce": {"us": 2.0}, "ours": {"us": 2.5}}
    mpi = {"sizes": [{"bytes": 8, "rows": rows}, {"bytes": 65536, "rows": rows}]}
    assert _plot.save({"mpi": mpi}, str(tmp_path / "mpi.png")) is True
    assert (tmp_path / "mpi.png").stat().st_size > 0
    assert _plot.save({"roofline": {"ceilings": {"gflops": 1.0}}}, str(tmp_path / "r.png")) is False
    assert not (tmp_path / "r.png").exists()


def test_measure_refuses_zero_repeats():
    """measure() with no repeats is a clear ValueError, not statistics' 'no median for empty data'."""
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        _timing.measure(lambda: None, 0)


def test_measure_of_calls_within_one_clock_tick_is_positive(monkeypatch):
    """Runs that end within the clock's tick count as one tick: the median is positive and a rate is finite."""
    monkeypatch.setattr(_timing._time, "perf_counter", lambda: 100.0)
    t = _timing.measure(lambda: None, 3)
    assert t["median"] > 0 and t["min"] > 0 and t["runs"] == 3
    assert t["spread"] == 0.0
    assert 8.0 / t["median"] > 0  # a rate, as the suites compute one, does not divide by zero


def test_measure_pair_alternates_the_two_and_which_goes_first():
    """measure_pair() calls the two functions in turn (after one warm-up each), the first of each pair alternating,
    and returns a summary per function over ``repeats`` runs."""
    calls = []
    first, second = _timing.measure_pair(lambda: calls.append("a"), lambda: calls.append("b"), 4)
    assert calls == ["a", "b"] + ["a", "b", "b", "a"] * 2
    assert first["runs"] == second["runs"] == 4
    assert first["min"] <= first["median"] <= first["max"] and second["median"] > 0
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        _timing.measure_pair(lambda: None, lambda: None, 0)


def test_bad_setting_is_a_clean_error_from_python_m_hpc_bench_mpi(tmp_path):
    """`python -m hpc.bench.mpi` (and scripts/bench_*.py) with a bad HPC_* value exit 2 naming it, launching nothing."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("HPC_")}
    env["HPC_MPI_CHECK"] = "yes"
    proc = subprocess.run(
        [sys.executable, "-m", "hpc.bench.mpi", "--tiny"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "HPC_MPI_CHECK must be 0 or 1; got 'yes'" in proc.stderr
    assert "Traceback" not in proc.stderr and "starting" not in proc.stderr


def test_every_suite_describes_its_machine_the_same_way():
    """hpc.bench._machine.describe gives the common facts; a suite's extras are added and win."""
    from hpc.bench import _machine

    machine = _machine.describe(("numpy", "surely-not-installed-dist"), ranks=3, cores=-1)
    assert {"hostname", "cpu", "simd", "available_cpus", "python", "implementation", "platform", "date"} <= set(machine)
    assert machine["versions"]["numpy"] and machine["versions"]["surely-not-installed-dist"] is None
    assert machine["ranks"] == 3 and machine["cores"] == -1


def test_help_lists_every_suite_with_what_it_measures(capsys):
    """`hpc bench --help` (and `hpc bench <suite> --help`) names each suite with a line on what it measures."""
    assert set(bench.SUMMARIES) == set(bench.SUITES)
    assert bench.main(["kernels", "--help"]) == 0
    out = capsys.readouterr().out
    for name, summary in bench.SUMMARIES.items():
        assert f"  {name}" in out and summary in out
    assert "does not change the exit status" in out


@pytest.fixture
def two_stubs(monkeypatch):
    """Make ``hpc bench`` (every suite) run two stub suites, "roofline" and "kernels", whose ``run`` is settable."""
    modules = {}
    for name in ("roofline", "kernels"):
        module = types.ModuleType(f"{STUB}_{name}")
        module.run = lambda quick, name=name, **kwargs: {"value": name}
        module.format_table = lambda results: f"table of {results['value']}"
        monkeypatch.setitem(sys.modules, module.__name__, module)
        modules[name] = module
    monkeypatch.setattr(bench, "SUITES", {name: module.__name__ for name, module in modules.items()})
    return modules


def test_a_failed_suite_is_one_line_and_the_others_are_still_written(two_stubs, tmp_path, capsys):
    """A suite that raised (an MPI job that died) ended the whole run with a traceback, and no JSON was written for
    the suites that had finished. It prints one line, the next suite runs, the JSON holds the finished ones, and the
    status is 1."""

    def dies(quick, **kwargs):
        raise RuntimeError("the 2-rank job exited with status 255")

    two_stubs["roofline"].run = dies
    path = tmp_path / "all.json"
    assert bench.main(["--json", str(path)]) == 1
    err = capsys.readouterr().err
    assert "hpc bench roofline: failed: RuntimeError: the 2-rank job exited with status 255" in err
    assert "Traceback" not in err
    assert json.loads(path.read_text()).keys() == {"kernels"}


def test_ctrl_c_writes_what_finished_and_exits_130(two_stubs, tmp_path, capsys):
    """Ctrl-C printed a traceback and lost every result: one line, the finished suites written, status 130."""

    def interrupted(quick, **kwargs):
        raise KeyboardInterrupt

    two_stubs["kernels"].run = interrupted
    path = tmp_path / "all.json"
    assert bench.main(["--json", str(path)]) == 130
    assert "hpc bench: interrupted; writing the 1 suite(s) that finished" in capsys.readouterr().err
    assert json.loads(path.read_text())["roofline"]["value"] == "roofline"


def test_hpc_cli_turns_ctrl_c_into_one_line(monkeypatch, capsys):
    """`hpc ...` interrupted anywhere: "hpc: interrupted" and 130, not a traceback."""
    from hpc import cli

    def interrupted(as_json):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_info", interrupted)
    assert cli.main(["info"]) == 130
    assert capsys.readouterr().err.strip() == "hpc: interrupted"


def test_empty_json_path_and_unknown_plot_format_are_refused_before_running(stub, tmp_path, capsys):
    """--json '' was taken as no --json (nothing written, status 0); --plot x.foo failed after the whole run."""
    assert bench.main(["roofline", "--json", ""]) == 2
    assert "an empty path" in capsys.readouterr().err
    pytest.importorskip("matplotlib")
    assert bench.main(["mpi", "--plot", str(tmp_path / "p.foo")]) == 2
    assert "matplotlib cannot write .foo files" in capsys.readouterr().err
    assert stub.runs == []


def test_a_json_write_failure_names_the_users_path(stub, tmp_path, monkeypatch, capsys):
    """The message named the hidden temporary file the data go to first."""
    import os

    target = tmp_path / "out.json"

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(os, "replace", refuse)
    assert bench.main(["roofline", "--json", str(target)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {target}: Permission denied" in err and ".tmp" not in err
    assert not list(tmp_path.iterdir())


def test_tables_a_reader_stopped_reading_do_not_stop_the_json(two_stubs, tmp_path, monkeypatch):
    """`hpc bench --json F | head -1`: the first table's print met a closed pipe, and the run ended with status 0
    and no JSON. The other suites run and the JSON holds them all."""
    import builtins

    real_print, calls = builtins.print, []

    def closed_pipe(*args, **kwargs):
        if kwargs.get("file") is None and args and str(args[0]).startswith("table of"):
            calls.append(args[0])
            raise BrokenPipeError
        return real_print(*args, **kwargs)

    monkeypatch.setattr(builtins, "print", closed_pipe)
    monkeypatch.setattr(bench._os, "dup2", lambda fd, fd2: None)  # leave the test's own stdout alone
    path = tmp_path / "all.json"
    assert bench.main(["--json", str(path)]) == 0
    assert json.loads(path.read_text()).keys() == {"roofline", "kernels"} and len(calls) == 2
