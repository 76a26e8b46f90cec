"""Register the "hpc" joblib backend when joblib is imported after hpc (``import hpc; import sklearn``).

``import hpc`` does not import joblib (180 ms). When joblib is already loaded it registers the backend at once;
otherwise it puts this finder first on ``sys.meta_path``: the first ``import joblib`` (scikit-learn's included) is
found by the usual finders, and once joblib's module has run, the backend registers and the finder removes itself.
"""

from __future__ import annotations

import importlib as _importlib
import importlib.abc as _abc
import sys as _sys
from typing import Any

__all__ = ["install"]


class _JoblibFinder(_abc.MetaPathFinder):
    """Finds nothing itself: wraps joblib's loader so that the backend registers right after joblib loads."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "joblib":
            return None
        _remove()
        spec = None
        for finder in _sys.meta_path:  # the finders after us, as the import system would ask them
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            _importlib.import_module("hpc.iter.joblib_backend")  # registers "hpc"

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

    def __repr__(self) -> str:
        return "<hpc joblib backend registration, waiting for import joblib>"


_finder = _JoblibFinder()


def _remove() -> None:
    try:
        _sys.meta_path.remove(_finder)
    except ValueError:
        pass


def install() -> None:
    """Register the backend now if joblib is loaded, else as soon as it is (idempotent)."""
    if "joblib" in _sys.modules:
        _importlib.import_module("hpc.iter.joblib_backend")
    elif _finder not in _sys.meta_path:
        _sys.meta_path.insert(0, _finder)
