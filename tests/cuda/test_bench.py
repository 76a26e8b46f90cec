"""Tests for hpc.cuda.bench: the suite runs at a tiny size and its table names every measurement."""

from __future__ import annotations

import json

from hpc.cuda import bench


def test_tiny_run_and_table(capsys) -> None:
    """run() returns every section with positive numbers and format_table prints one line per item."""
    result = bench.run(True, scale=0.01)
    json.dumps(result)
    assert result["device_copy_GBps"] > 0
    assert set(result["transfers_GBps"]) >= {"h2d_pageable_raw", "h2d_pageable_staged", "h2d_pinned", "d2h_pinned"}
    expected = {"axpy", "dot", "sum", "nrm2", "min", "max", "softmax", "inclusive_scan", "sqdist", "kmeans_assign"}
    assert set(result["kernels"]) == expected
    assert all(k["ms"] > 0 for k in result["kernels"].values())
    assert result["launch_us"] > 0 and result["alloc_us"]["pool"] > 0
    table = bench.format_table(result)
    assert table.startswith("hpc bench cuda: ")
    for name in expected | {"device copy", "launch latency", "alloc+free"}:
        assert name in table


def test_main_writes_json(tmp_path, monkeypatch) -> None:
    """python -m hpc.cuda.bench --quick --json FILE prints the table and writes the numbers."""
    real = bench.run
    monkeypatch.setattr(bench, "run", lambda quick, log=None: real(quick, log=log, scale=0.01))
    out = tmp_path / "cuda.json"
    assert bench.main(["--quick", "--json", str(out)]) == 0
    assert "device_copy_GBps" in json.loads(out.read_text())
