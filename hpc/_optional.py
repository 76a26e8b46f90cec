"""Optional dependencies, tried once each; a missing one is ``None`` and says so at the point of use."""

from __future__ import annotations

import importlib as _importlib
from contextlib import AbstractContextManager as _AbstractContextManager
from contextlib import nullcontext as _nullcontext
from types import ModuleType as _ModuleType

__all__ = ["optional_module", "require", "why_missing"]

_HINTS = {
    "mpi4py": "pip install mpi4py mpich",
    "pycuda": "pip install pycuda",
    "matplotlib": "pip install matplotlib",
    "numba": "pip install numba",
    "scipy.optimize": "pip install scipy",
}
_cache: dict[str, _ModuleType | None] = {}
_errors: dict[str, str] = {}


def optional_module(name: str) -> _ModuleType | None:
    """Return the imported module ``name``, or ``None`` when it cannot be imported (tried once)."""
    if name not in _cache:
        try:
            with _import_environment(name):
                _cache[name] = _importlib.import_module(name)
        except Exception as exc:  # an optional import may fail with more than ImportError (a broken driver)
            _cache[name] = None
            _errors[name] = f"{type(exc).__name__}: {exc}"
    return _cache[name]


def _import_environment(name: str) -> _AbstractContextManager[None]:
    # importing mpi4py.MPI initialises MPI: in a process no launcher started, in the environment it needs there
    if name == "mpi4py.MPI":
        from hpc import _launcher

        return _launcher.mpi_init_environment()
    return _nullcontext()


def why_missing(name: str) -> str:
    """Return the import error that made ``name`` unavailable, or an empty string."""
    optional_module(name)
    return _errors.get(name, "")


def require(name: str, feature: str) -> _ModuleType:
    """Return module ``name`` or raise an ImportError that says which feature needs it and how to install it."""
    module = optional_module(name)
    if module is None:
        hint = _HINTS.get(name, f"pip install {name}")
        raise ImportError(f"{feature} needs {name}; install it with: {hint} ({why_missing(name)})")
    return module
