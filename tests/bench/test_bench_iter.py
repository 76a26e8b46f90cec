"""hpc bench iter on tiny sizes: the shape of its results, its table and its JSON output; never its timings."""

from __future__ import annotations

import json
import os

import pytest

from hpc import bench
from hpc.bench import iter as bench_iter

TINY = 0.01


@pytest.fixture(scope="module")
def results():
    """One tiny quick run, shared by the structure tests."""
    return bench_iter.run(True, scale=TINY, install_missing=False)


def test_run_reports_every_workload_and_contestant(results):
    """A tiny run returns all three workloads with a row per contestant and the serial baselines."""
    workloads = results["workloads"]
    assert set(workloads) == {"tiny", "uneven", "numba"}
    for name in ("tiny", "uneven"):
        rows = workloads[name]["rows"]
        for label in (
            "serial Python",
            "hpc par_iter (threads)",
            "hpc par_iter (processes)",
            "hpc par_iter (auto)",
            "multiprocessing.Pool.map",
            "ProcessPoolExecutor",
            "joblib.Parallel (loky)",
        ):
            assert label in rows, (name, label)
        assert rows["serial Python"]["vs_serial"] == pytest.approx(1.0)
        assert rows["multiprocessing.Pool.map"]["vs_pool_map"] == pytest.approx(1.0)
    numba = workloads["numba"]["rows"]
    assert set(numba) == {
        "serial loop",
        "hpc par_chunks (threads)",
        "hpc par_chunks (serial)",
        "joblib.Parallel (threading)",
        "ThreadPoolExecutor",
    }
    assert numba["serial loop"]["speedup"] == pytest.approx(1.0)


def test_every_contestant_computes_the_serial_answer(results):
    """Each contestant's result equals the serial one (exactly for ints, to 1e-9 for the float kernel)."""
    for workload in results["workloads"].values():
        for label, row in workload["rows"].items():
            assert row["ok"], label
            repeats = workload.get("repeats", results["settings"]["repeats"])  # (c) takes more, shorter runs
            assert row["seconds"] > 0 and len(row["runs"]) == repeats


def test_run_reports_startup_call_overhead_and_machine(results):
    """Process start-up, the empty-call cost and the machine facts are reported."""
    assert "multiprocessing.Pool.map" in results["startup_s"]
    assert results["empty_call_us"] > 0 and results["one_item_call_us"] > 0
    assert results["machine"]["cores"] == os.cpu_count()
    assert results["settings"]["workers"] == os.cpu_count()


def test_format_table_names_each_workload(results):
    """The table has the three workload headings and a line per contestant."""
    table = bench_iter.format_table(results)
    for heading in ("(a)", "(b)", "(c)", "joblib.Parallel (loky)", "ThreadPoolExecutor", "empty par_iter"):
        assert heading in table


def test_run_rejects_a_bad_scale():
    """A non-positive scale is refused before anything runs."""
    with pytest.raises(ValueError, match="scale must be a positive number"):
        bench_iter.run(True, scale=0)


def test_main_writes_json(tmp_path, capsys):
    """`hpc bench iter --quick --json FILE` (tiny sizes) prints the table and writes the numbers with machine info."""
    path = tmp_path / "iter.json"
    assert bench.main(["iter", "--quick", "--tiny", "--json", str(path)]) == 0
    assert "(a)" in capsys.readouterr().out
    data = json.loads(path.read_text())
    machine = data["iter"]["machine"]
    assert machine["cores"] == os.cpu_count() and machine["python"] and machine["date"]
    assert set(data["iter"]["workloads"]) == {"tiny", "uneven", "numba"}
    assert "joblib.Parallel (loky)" in data["iter"]["workloads"]["tiny"]["rows"], data["iter"]["notes"]


def test_main_refuses_unknown_suites(capsys):
    """Every suite named in SUITES is built, and an unknown name is a usage error (status 2)."""
    assert all(bench.SUITES.values())
    assert bench.main(["gpu-magic"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_main_usage_error_returns_two():
    """An unknown option is a usage error (status 2), not an exception."""
    assert bench.main(["iter", "--no-such-flag"]) == 2


def test_sklearn_workloads_on_three_backends(results):
    """(d) runs scikit-learn's n_jobs on loky, threading and hpc, gives the same answers, and is in the table."""
    pytest.importorskip("sklearn")
    sklearn = results["sklearn"]
    assert set(sklearn) == {"RandomForest", "GridSearchCV", "HistGradientBoosting", "KNN", "permutation_importance"}
    for work in sklearn.values():
        assert set(work["rows"]) == {"loky", "threading", "hpc"}
        assert all(row["same"] and row["seconds"] > 0 for row in work["rows"].values())
    table = bench_iter.format_table(results)
    assert "(d) scikit-learn" in table and "permutation_importance" in table


def test_a_missing_peer_is_skipped_with_a_note_and_nothing_is_installed(monkeypatch):
    """`hpc bench iter` ran `pip install mpire` into the user's environment by default, silently (up to 300 s
    offline). It installs nothing unless asked: the note says how."""
    import sys

    from hpc.bench import _peers

    monkeypatch.setitem(sys.modules, "mpire", None)  # import mpire fails
    monkeypatch.setattr(_peers._subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
    mpire, note = _peers.load_mpire(False)
    assert mpire is None and "'hpc-substrate[bench]'" in note
    import inspect

    assert inspect.signature(bench_iter.run).parameters["install_missing"].default is False
