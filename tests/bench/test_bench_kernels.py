"""hpc bench roofline + kernels on tiny sizes: the structure of their JSON-able results and tables; never timings."""

from __future__ import annotations

import json

import pytest

from hpc.bench import kernels as bench_kernels
from hpc.bench import roofline

TINY = 0.002


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """One tiny quick run of the kernels suite (it measures the roofline too), written as JSON."""
    path = tmp_path_factory.mktemp("bench") / "kernels.json"
    res = bench_kernels.run(True, scale=TINY, json=str(path), compile_times=False)
    return res, path


def test_roofline_reports_positive_ceilings():
    """A tiny roofline run gives positive triad, read and gemm ceilings and a table naming them."""
    res = roofline.run(True, scale=TINY)
    assert set(res["ceilings"]) == {"triad_gbs", "read_gbs", "gflops"}
    assert all(v > 0 for v in res["ceilings"].values())
    assert set(res["env"]) == {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}
    table = roofline.format_table(res)
    assert "triad" in table and "GFLOP/s" in table
    json.dumps(res)


def test_kernels_result_structure(result):
    """Both sizes list every kernel with a rate, a fraction of a ceiling and a NumPy ratio."""
    res, _ = result
    assert set(res) >= {"machine", "settings", "roofline", "sizes", "compile", "notes"}
    assert set(res["sizes"]) == {"large", "cache"}
    for size in res["sizes"].values():
        rows = size["rows"]
        for name in ("sum", "dot", "nrm2", "axpy (out=)", "a*x+b*y+c", "softmax rows", "histogram 256 bins",
                     "inclusive scan", "jacobi 5-point", "sqdist 64-d", "kmeans assign k=256"):  # fmt: skip
            assert name in rows, name
        for row in rows.values():
            assert row["unit"] in ("GB/s", "GFLOP/s")
            assert row["value"] > 0 and row["fraction"] > 0 and row["vs_numpy"] > 0
            assert row["seconds"]["runs"] >= 3
            assert row["seconds"]["min"] <= row["seconds"]["median"] <= row["seconds"]["max"]


def test_kernels_json_file_and_table(result):
    """The JSON file round-trips to the returned dict and the table shows every kernel."""
    res, path = result
    assert json.loads(path.read_text()) == json.loads(json.dumps(res))
    table = bench_kernels.format_table(res)
    for name in res["sizes"]["large"]["rows"]:
        assert name in table
    assert table.startswith("cpu: ") and res["machine"]["cpu"]["model"] in table
    assert res["machine"]["versions"]["numba"] and res["machine"]["cores"] >= 1  # the machine facts every suite has


def test_compile_and_load_measures_both_processes():
    """The compile-vs-cache measurement reports a compile and a cached time for each kernel asked for."""
    comp = bench_kernels.compile_and_load(["sum"])
    assert comp["kernels"]["sum"]["compile_s"] > 0 and comp["kernels"]["sum"]["cached_s"] > 0
    assert comp["ratio"] == pytest.approx(comp["cached_total_s"] / comp["compile_total_s"])


def test_plot_draws_or_names_the_extra(result, tmp_path):
    """plot() writes a PNG with matplotlib, or raises ImportError naming the plot extra without it."""
    res, _ = result
    path = tmp_path / "roofline.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"hpc-substrate\[plot\]"):
            bench_kernels.plot(res, str(path))
    else:
        bench_kernels.plot(res, str(path))
        assert path.stat().st_size > 1000


def test_slow_kernels_are_named():
    """A kernel below 0.5x NumPy is named for the table's warning line; one at 1.2x is not."""
    result = {
        "machine": {"numba_threads": 1, "threading_layer": "omp", "versions": {"numba": "0", "numpy": "0",
                    "numexpr": None}, "loadavg_before": None, "loadavg_after": None},
        "roofline": None,
        "sizes": {"large": {"bytes_per_array": 2**20, "rows": {
            "fast": {"seconds": {"median": 1.0, "spread": 0.0}, "value": 1.0, "unit": "GB/s", "fraction": 1.0,
                     "vs_numpy": 1.2, "first_call_s": 0.0},
            "slow": {"seconds": {"median": 1.0, "spread": 0.0}, "value": 1.0, "unit": "GB/s", "fraction": 0.1,
                     "vs_numpy": 0.03, "first_call_s": 0.0},
        }}},
    }  # fmt: skip
    assert bench_kernels.slow_kernels(result) == ["slow (large): 0.03x NumPy"]


def _row(vs_numpy):
    return {"seconds": {"median": 1.0, "spread": 0.0}, "numpy_seconds": {"median": vs_numpy}, "value": 1.0,
            "unit": "GB/s", "fraction": 1.0, "vs_numpy": vs_numpy, "first_call_s": 0.0}  # fmt: skip


def test_a_kernel_below_half_numpy_is_timed_again_with_numpy_in_turn(result):
    """A row below 0.5x NumPy is re-timed with ours and NumPy taking turns: the row takes the new figures (rate and
    ratio from them), keeps the first pass's, and the table marks it and lists both ratios."""
    calls = []
    case = bench_kernels._Case("k", "read", 8e6, 0, lambda: calls.append("ours"), lambda: calls.append("numpy"))
    row = _row(0.01)
    first = dict(row)
    ceilings = {"read_gbs": 10.0, "triad_gbs": 10.0, "gflops": 10.0}
    bench_kernels._retime(row, case, 3, 0.0, ceilings)
    runs = bench_kernels.RETIME_REPEATS
    assert calls.count("ours") == calls.count("numpy") == runs + 1  # one warm-up each
    assert calls[2:6] == ["ours", "numpy", "numpy", "ours"]
    assert row["first_pass"] == {"seconds": first["seconds"], "numpy_seconds": first["numpy_seconds"],
                                 "vs_numpy": 0.01}  # fmt: skip
    assert row["seconds"]["runs"] == row["numpy_seconds"]["runs"] == runs
    assert row["vs_numpy"] == row["numpy_seconds"]["median"] / row["seconds"]["median"]
    assert row["value"] == 8e6 / row["seconds"]["median"] / 1e9 and row["fraction"] == row["value"] / 10.0

    row["vs_numpy"] = 1.25  # as the re-time might find: no warning then, the re-time line instead
    run, _ = result
    made = {"machine": run["machine"], "roofline": run["roofline"],
            "sizes": {"cache": {"bytes_per_array": 2**20, "rows": {"k": row, "other": _row(2.0)}}}}  # fmt: skip
    table = bench_kernels.format_table(made)
    assert "1.25*" in table and "2.00x" in table
    assert "after a first pass below 0.5x NumPy: k (cache) 0.01x -> 1.25x" in table
    assert "WARNING" not in table and bench_kernels.slow_kernels(made) == []
    row["vs_numpy"] = 0.3  # slow on the re-time too: the warning names it with the re-timed figure
    assert bench_kernels.slow_kernels(made) == ["k (cache): 0.30x NumPy"]
    assert "WARNING: below 0.5x NumPy on this CPU: k (cache): 0.30x NumPy" in bench_kernels.format_table(made)


def test_a_kernel_with_a_blas_peer_is_timed_again_alone_after_blas_settles(monkeypatch):
    """Where NumPy's peer runs on BLAS's threads, the re-time does not alternate (that would time our kernel while
    they spin): it waits for them to settle, times ours in a block, then NumPy, and waits again."""
    calls = []
    monkeypatch.setattr(bench_kernels._time, "sleep", lambda s: calls.append(("sleep", s)))
    case = bench_kernels._Case("g", "flops", 0, 1e6, lambda: calls.append("ours"), lambda: calls.append("numpy"),
                               blas=True)  # fmt: skip
    row = _row(0.2)
    bench_kernels._retime(row, case, 3, 0.0, {"read_gbs": 1.0, "triad_gbs": 1.0, "gflops": 10.0})
    runs = bench_kernels.RETIME_REPEATS
    settle = ("sleep", bench_kernels._BLAS_SETTLE_S)
    assert calls == [settle] + ["ours"] * (runs + 1) + ["numpy"] * (runs + 1) + [settle]  # one warm-up each
    assert row["first_pass"]["vs_numpy"] == 0.2 and row["seconds"]["runs"] == runs
    assert row["value"] == 1e6 / row["seconds"]["median"] / 1e9


def test_a_retimed_row_gives_every_ratio_from_the_retime(monkeypatch):
    """After a re-time the numexpr ratio, like NumPy's, divides by our re-timed median, not the first pass's."""

    def timing(median):
        return {"median": median, "min": median, "max": median, "spread": 0.0, "runs": 7}

    case = bench_kernels._Case("k", "read", 8e6, 0, lambda: None, lambda: None, numexpr=lambda: None)
    first = iter([timing(1.0), timing(0.1), timing(0.2)])  # ours (slow), NumPy, numexpr
    monkeypatch.setattr(bench_kernels, "_cases", lambda n, ne: [case])
    monkeypatch.setattr(bench_kernels, "_measure", lambda fn, repeats, min_seconds=0.0: next(first))
    monkeypatch.setattr(bench_kernels, "_measure_pair", lambda a, b, runs, min_seconds=0.0: (timing(0.05), timing(0.1)))
    monkeypatch.setattr(bench_kernels._time, "sleep", lambda s: None)
    ceilings = {"read_gbs": 10.0, "triad_gbs": 10.0, "gflops": 10.0}
    row = bench_kernels._bench_size("cache", 4096, None, 3, ceilings, lambda line: None)["rows"]["k"]
    assert row["first_pass"]["vs_numpy"] == pytest.approx(0.1)
    assert row["vs_numpy"] == pytest.approx(2.0) and row["vs_numexpr"] == pytest.approx(4.0)
