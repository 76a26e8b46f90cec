"""The one C extension, declared here so any setuptools >= 64 builds it (the metadata is in pyproject.toml).

``hpc.mpi._fused_queue`` is the C fast lane of ``comm.fused()``. It is optional: without a C compiler or Python
headers the build warns and goes on, and ``hpc/mpi/_fused_queue_py.py`` does the same work in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "hpc.mpi._fused_queue",
            sources=["hpc/mpi/_fused_queue.c"],
            extra_compile_args=["-O2", "-Wall", "-Werror"],
            optional=True,
        )
    ]
)
