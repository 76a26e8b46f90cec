"""SIMD-vectorized numba kernels with CUDA twins, installed as ``hpc.kernels`` (never as a top-level ``kernels``).

The kernels themselves are not written yet; this package exists so the layout and the install mapping are real.
"""

__all__: list[str] = []
