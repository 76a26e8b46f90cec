"""The examples in the public docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

import hpc

MODULES = [
    "hpc.iter.par_iter",
    "hpc.iter.sources",
    "hpc._core.join",
    "hpc._core.scope",
    "hpc._core.pool",
    "hpc.mpi",
    "hpc.mpi.comm",
    "hpc.mpi.ops",
    "hpc.mpi.fused",
    "hpc.mpi.stats",
    "hpc.kernels",
    *(f"hpc.kernels.{name}" for name in ("blas1", "columns", "distances", "elementwise", "histogram", "kmeans",
                                         "logistic", "matrix", "reductions", "rows", "scan", "simd", "stencil")),
    "hpc.ml",
    "hpc.ml.kmeans",
    "hpc.ml.linear",
    "hpc.ml.logistic",
    "hpc.ml.pca",
    "hpc.ml.rows",
    "hpc.ml.scaler",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    """Every example in the module's docstrings passes under doctest."""
    module = importlib.import_module(name)
    globs = {"np": np, **{n: getattr(hpc, n) for n in hpc.__all__}}
    result = doctest.testmod(module, extraglobs=globs, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
