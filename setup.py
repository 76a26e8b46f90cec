"""The one C extension and the start-up file, declared for any setuptools >= 64 (the metadata is in pyproject.toml).

``hpc.mpi._fused_queue`` is the C fast lane of ``comm.fused()``, written on NumPy's C API (pyproject.toml's build
requirements bring NumPy's headers). It is optional: without a C compiler, Python's headers or NumPy the build warns
and goes on, and ``hpc/mpi/_fused_queue_py.py`` does the same work in Python.

``hpc-joblib.pth`` goes to the root of the wheel, so it lands in site-packages, where Python runs it at start-up:
it lets joblib find the "hpc" backend in processes that never import hpc (``hpc/iter/_joblib_hook.py``). An editable
install does not carry it (setuptools' editable wheels hold only the package finder): ``make install`` copies it.
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

PTH = "hpc-joblib.pth"


def numpy_headers() -> list[str]:
    """NumPy's include directory, or none (then the optional extension fails to build, with a warning)."""
    try:
        import numpy
    except ImportError:
        return []
    return [numpy.get_include()]


class BuildPyWithPth(build_py):
    """build_py that also puts ``startup/hpc-joblib.pth`` at the root of the build (the wheel's site-packages)."""

    def run(self) -> None:
        super().run()
        self.copy_file(os.path.join("startup", PTH), os.path.join(self.build_lib, PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


setup(
    cmdclass={"build_py": BuildPyWithPth},
    ext_modules=[
        Extension(
            "hpc.mpi._fused_queue",
            sources=["hpc/mpi/_fused_queue.c"],
            include_dirs=numpy_headers(),
            extra_compile_args=["-O2", "-Wall", "-Werror"],
            optional=True,
        )
    ]
)
