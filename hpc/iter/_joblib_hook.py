"""Register the "hpc" joblib backend whenever joblib is imported, whether or not hpc was imported first.

joblib learns backend names from ``joblib.register_parallel_backend``; nobody calls that for us in a process that
imports joblib before hpc, or never imports hpc at all (a loky worker running a user's inner
``parallel_config(backend="hpc")``). Two paths lead here:

- ``import hpc`` calls :func:`install` (``lazy=False``): with joblib loaded, the backend registers at once; without,
  a finder goes first on ``sys.meta_path``, lets the usual finders load joblib, registers the backend right after
  joblib's module has run, and removes itself.
- At interpreter start-up, ``hpc-joblib.pth`` (installed into site-packages beside the package) runs the module
  ``_hpc_joblib_hook``, which loads this file on its own, without importing the hpc package (NumPy, numba: too much
  for every Python start), and calls :func:`install` with ``lazy=True``: joblib then gets a factory that imports hpc
  only when "hpc" is first asked for.

This file imports nothing but ``importlib`` and ``sys`` (no ``importlib.abc``, no ``typing``: 10 ms at every start),
so it can run before hpc is importable as a package.
"""

from __future__ import annotations

import importlib as _importlib
import sys as _sys

__all__ = ["install"]


def _hpc_backend(**kwargs: object) -> object:
    """Return an ``HpcBackend``: what joblib calls for "hpc" after a lazy registration (this imports hpc)."""
    return _importlib.import_module("hpc.iter.joblib_backend").HpcBackend(**kwargs)


def _register(joblib: object, lazy: bool) -> None:
    if not lazy:
        _importlib.import_module("hpc.iter.joblib_backend")  # registers the class itself
    elif "hpc" not in joblib.parallel.BACKENDS:
        joblib.register_parallel_backend("hpc", _hpc_backend)


class _JoblibFinder:
    """A ``sys.meta_path`` finder that finds nothing itself: it wraps joblib's loader so that the backend registers
    right after joblib loads."""

    hpc_joblib_hook = True  # how another copy of this module (the start-up one) recognises it

    def __init__(self, lazy: bool) -> None:
        self.lazy = lazy

    def find_spec(self, name: str, path: object, target: object = None) -> object:
        if name != "joblib":
            return None
        _remove(self)
        spec = None
        for finder in _sys.meta_path:  # the finders after us, as the import system would ask them
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run, lazy = spec.loader.exec_module, self.lazy

        def exec_module(module: object) -> None:
            run(module)
            _register(module, lazy)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

    def __repr__(self) -> str:
        return f"<hpc joblib backend registration, waiting for import joblib (lazy={self.lazy})>"


def _remove(finder: _JoblibFinder) -> None:
    try:
        _sys.meta_path.remove(finder)
    except ValueError:
        pass


def install(lazy: bool = False) -> None:
    """Register the backend now if joblib is loaded, else as soon as it is (idempotent).

    Args:
        lazy (bool): register a factory that imports hpc on first use (the start-up path), not the class itself.
    """
    if "joblib" in _sys.modules:
        _register(_sys.modules["joblib"], lazy)
        return
    waiting = [f for f in _sys.meta_path if getattr(f, "hpc_joblib_hook", False)]
    if not waiting:
        _sys.meta_path.insert(0, _JoblibFinder(lazy))
    elif not lazy:  # hpc is imported: the class can register when joblib loads
        for finder in waiting:
            finder.lazy = False
