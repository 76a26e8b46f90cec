"""hpc bench ml on a tiny configuration: the shape of its JSON and table and the fits' answers, never timings."""

from __future__ import annotations

import copy
import json
import math

import pytest

from hpc import bench
from hpc.bench import ml as bench_ml

pytest.importorskip("sklearn")

#: the objective each kind reports, and how close ours must be to scikit-learn's (same data, init, tol, caps)
CLOSE = {"inertia": 1e-9, "loss": 1e-5, "r2": 1e-9, "explained_variance_ratio": 1e-5}


def _positive_finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny run through ``hpc.bench.main`` (in process, then one ``mpiexec -n 2`` job); its JSON and table."""
    path = tmp_path_factory.mktemp("bench-ml") / "ml.json"
    status = bench.main(["ml", "--tiny", "--json", str(path)])
    assert status == 0
    return json.loads(path.read_text())["ml"]


def test_json_has_machine_settings_contestants_and_workloads(tiny):
    """The JSON records the machine (hpc info's CPU), the settings, every contestant and every workload."""
    machine = tiny["machine"]
    assert isinstance(machine["cpu"], dict) and machine["cpu"]["model"] and machine["date"]
    assert machine["versions"]["scikit-learn"] and machine["threads"] >= 1
    settings = tiny["settings"]
    assert settings["scale"] == bench.TINY_SCALE and settings["repeats"] == 1 and not settings["quick"]
    assert settings["params"]["kmeans"] == {"tol": 0.0, "max_iter": 10, "n_init": 1, "algorithm": "lloyd"}
    assert tiny["contestants"] == list(bench_ml.CONTESTANTS)
    assert [w["name"] for w in tiny["workloads"]] == [w["name"] for w in bench_ml.WORKLOADS]
    for workload, spec in zip(tiny["workloads"], bench_ml.WORKLOADS):
        assert workload["full_rows"] == spec["rows"] and workload["features"] == spec["features"]
        assert 0 < workload["rows_n"] < spec["rows"]  # scaled rows, features and k kept
        assert set(workload["rows"]) == set(bench_ml.CONTESTANTS)


def test_every_row_ran_or_says_why(tiny):
    """Ours and scikit-learn ran everywhere; a row that did not run says why; an ok row has positive times."""
    for workload in tiny["workloads"]:
        rows = workload["rows"]
        assert rows[bench_ml.OURS]["status"] == "ok" and rows[bench_ml.SKLEARN]["status"] == "ok"
        assert rows[bench_ml.SKLEARN]["vs_sklearn"] == pytest.approx(1.0)
        elkan = rows[bench_ml.SKLEARN_ELKAN]
        if workload["kind"] == "kmeans":  # scikit-learn's Elkan: the same fixed points as its Lloyd from one init
            assert elkan["status"] == "ok"
        else:
            assert elkan == {"status": "skipped", "reason": "KMeans only"}
        for label, row in rows.items():
            assert row["status"] in ("ok", "skipped", "failed"), (workload["name"], label)
            if row["status"] != "ok":
                assert row["reason"], (workload["name"], label)
                continue
            assert _positive_finite(row["seconds"]) and row["seconds"] == min(row["runs"])
            assert 1 <= len(row["runs"]) <= tiny["settings"]["repeats"]
            assert _positive_finite(row["vs_sklearn"])
            if workload["kind"] in ("kmeans", "logreg"):
                assert row["n_iter"] >= 1 and _positive_finite(row["per_iter_s"])
            else:
                assert row["n_iter"] is None and row["per_iter_s"] is None


def test_ours_reaches_scikit_learns_objective(tiny):
    """Same data, init, tol and caps: ours ends where scikit-learn does (the suite compares like with like)."""
    for workload in tiny["workloads"]:
        kind = workload["kind"]
        key = {"kmeans": "inertia", "logreg": "loss", "ridge": "r2", "pca": "explained_variance_ratio"}[kind]
        ours = workload["rows"][bench_ml.OURS]["objective"][key]
        theirs = workload["rows"][bench_ml.SKLEARN]["objective"][key]
        if kind == "kmeans" and workload["init"] == "k-means++":
            # each library draws its own k-means++ centres: an inertia as good, within the suite's 1.05x target
            assert ours <= 1.05 * theirs, workload["name"]
            continue
        assert ours == pytest.approx(theirs, rel=CLOSE[key]), workload["name"]
        if kind == "kmeans":  # exactly max_iter Lloyd iterations unless the labels stopped changing; Elkan alike
            assert workload["rows"][bench_ml.OURS]["n_iter"] == workload["rows"][bench_ml.SKLEARN]["n_iter"]
            elkan = workload["rows"][bench_ml.SKLEARN_ELKAN]
            assert elkan["objective"][key] == pytest.approx(theirs, rel=CLOSE[key]), workload["name"]


def test_mpi_contestant_ran_on_two_ranks_or_says_why(tiny):
    """The mpiexec contestant reports 2 ranks of 1 thread and compares its fit's bits with the 1-process fit."""
    for workload in tiny["workloads"]:
        row = workload["rows"][bench_ml.OURS_MPI]
        if row["status"] == "skipped":
            assert "mpi" in row["reason"].lower()
            continue
        assert row["status"] == "ok", row.get("reason")
        assert row["ranks"] == 2 and row["threads_per_rank"] == 1
        assert isinstance(row["same_bits_as_one_process"], bool)


def test_format_table_has_cpu_line_every_workload_and_contestant(tiny):
    """The table starts with hpc info's CPU line and shows every workload and contestant, skipped rows with why."""
    table = bench_ml.format_table(tiny)
    lines = table.splitlines()
    assert lines[0].startswith("cpu: ") and tiny["machine"]["cpu"]["model"] in lines[0]
    for spec in bench_ml.WORKLOADS:
        assert spec["title"] in table
    for label in bench_ml.CONTESTANTS:
        assert table.count(f"  {label}") >= len(bench_ml.WORKLOADS), label
    assert "dask-ml" in table and "ratio" in table and "inertia" in table and "R^2" in table


def test_format_table_shows_skipped_and_failed_rows(tiny):
    """A skipped or failed contestant is one line with its reason; no ratio is printed for it."""
    results = copy.deepcopy(tiny)
    for workload in results["workloads"]:
        workload["rows"][bench_ml.OURS_MPI] = {"status": "skipped", "reason": "needs mpiexec (test)"}
        workload["rows"][bench_ml.SKLEARNEX] = {"status": "failed", "reason": "ImportError: test"}
    table = bench_ml.format_table(results)
    assert table.count("skipped: needs mpiexec (test)") == len(bench_ml.WORKLOADS)
    assert table.count("failed: ImportError: test") == len(bench_ml.WORKLOADS)


def test_unavailable_without_scikit_learn(monkeypatch, capsys):
    """Without scikit-learn, ``hpc bench ml`` exits with status 2 and says what to install."""
    real = bench_ml._import_util.find_spec
    monkeypatch.setattr(bench_ml._import_util, "find_spec", lambda name: None if name == "sklearn" else real(name))
    assert bench.main(["ml", "--tiny"]) == 2
    assert "needs scikit-learn" in capsys.readouterr().err


def test_run_rejects_bad_arguments():
    """A non-positive scale or repeat count is refused before any data are made."""
    with pytest.raises(ValueError, match="scale must be a positive number"):
        bench_ml.run(True, scale=0)
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        bench_ml.run(True, scale=0.01, repeats=0)
