"""Give numba's ``cache=True`` somewhere to write where it would find nowhere.

numba keeps each cached function's machine code beside its source (``__pycache__``), else in the user's cache
directory (``$XDG_CACHE_HOME/numba``, or ``~/.cache/numba``). Where it can write neither (a read-only install used by
someone whose home is not writable: a cluster's shared software stack, a service account such as ``nobody``),
decorating a cached function raises ``RuntimeError: cannot cache function ...: no locator available`` at import:
``import hpc.kernels``, ``hpc.mpi`` and ``hpc.ml`` all failed there. Then, and only then, ``NUMBA_CACHE_DIR`` is
pointed at a directory of this user's own under the temporary directory (created mode 0700, used only if this user
owns it and nobody else may write it): each process reuses what the first compiled. A ``NUMBA_CACHE_DIR`` the user
set is left alone. Run by ``import hpc``, before any hpc module decorates a numba function.
"""

from __future__ import annotations

import os as _os
import stat as _stat
import sys as _sys
import tempfile as _tempfile

__all__ = ["ensure_cache_dir"]


def _can_write(directory: str) -> bool:
    """Whether this process could create files in ``directory``, or create it (its nearest existing ancestor)."""
    path = directory
    while not _os.path.isdir(path):
        parent = _os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return _os.access(path, _os.W_OK | _os.X_OK)


def _user_cache_dir() -> str:
    """numba's user-wide cache directory (``numba.misc.appdirs.user_cache_dir("numba")`` on Linux)."""
    return _os.path.join(_os.getenv("XDG_CACHE_HOME", _os.path.expanduser("~/.cache")), "numba")


def _private(directory: str) -> bool:
    """Whether ``directory`` is this user's own and nobody else may write it (a name in /tmp anyone could take)."""
    try:
        info = _os.stat(directory)
    except OSError:
        return False
    return info.st_uid == _os.getuid() and not info.st_mode & (_stat.S_IWGRP | _stat.S_IWOTH)


def ensure_cache_dir() -> str | None:
    """Point numba's cache at a private temporary directory where it has nowhere else to write; return that
    directory, or None where nothing was needed (or nothing safe was found: numba then raises as before)."""
    if _os.environ.get("NUMBA_CACHE_DIR") or not hasattr(_os, "getuid"):
        return None
    package = _os.path.dirname(_os.path.abspath(__file__))
    if _can_write(_os.path.join(package, "__pycache__")) or _can_write(_user_cache_dir()):
        return None
    fallback = _os.path.join(_tempfile.gettempdir(), f"hpc-numba-cache-{_os.getuid()}")
    try:
        _os.makedirs(fallback, mode=0o700, exist_ok=True)
    except OSError:
        return None
    if not (_private(fallback) and _can_write(fallback)):
        return None
    _os.environ["NUMBA_CACHE_DIR"] = fallback
    config = _sys.modules.get("numba.core.config")
    if config is not None:  # numba read its settings at import: its locators read this attribute when they run
        config.CACHE_DIR = fallback
    return fallback
