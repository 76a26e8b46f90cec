"""SIMD-vectorized numba kernels, installed as ``hpc.kernels`` (never as a top-level ``kernels``).

Every kernel takes float32 or float64 NumPy arrays and has a serial variant (vectorized by LLVM: check with
:func:`hpc.kernels.simd.inspect`); the array kernels also have a parallel one (``numba.prange``), chosen by
``parallel=True/False`` or, with ``parallel=None``, by the size of the work (``kmeans_step``,
``logistic_loss_grad``, ``softmax_loss_grad`` and ``fuse`` take no ``parallel=``: docs/kernels.md). Compiled
code is cached on disk (``cache=True``), so only the first process compiles. Wrong dtype, shape or layout raises
``TypeError``/``ValueError`` naming the argument.

>>> import numpy as np
>>> from hpc import kernels
>>> float(kernels.sum(np.arange(10.0)))
45.0
"""

from . import simd
from .blas1 import asum, axpy, dot, nrm2, scal
from .columns import column_moments
from .distances import kmeans_assign, sqdist
from .elementwise import axpbyc, fuse
from .histogram import histogram
from .kmeans import kmeans_distances, kmeans_step, kmeans_step_bounded
from .logistic import logistic_loss_grad, softmax_loss_grad
from .matrix import gemm, gemm_tiled, gemv
from .reductions import argmax, argmin, max, mean, mean_var, min, sum, var
from .rows import layernorm, logsumexp, softmax
from .scan import exclusive_scan, inclusive_scan
from .stencil import jacobi_step

__all__ = [
    "argmax", "argmin", "asum", "axpbyc", "axpy", "column_moments", "dot", "exclusive_scan", "fuse", "gemm",
    "gemm_tiled", "gemv", "histogram", "inclusive_scan", "jacobi_step", "kmeans_assign", "kmeans_distances",
    "kmeans_step", "kmeans_step_bounded", "layernorm", "logistic_loss_grad", "logsumexp", "max", "mean", "mean_var",
    "min", "nrm2", "scal", "simd", "softmax", "softmax_loss_grad", "sqdist", "sum", "var",
]  # fmt: skip
