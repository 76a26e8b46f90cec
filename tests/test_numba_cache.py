"""hpc._numba_cache: a private cache directory for numba where it could write none (read-only install, no home)."""

from __future__ import annotations

import os
import stat

import pytest

from hpc import _numba_cache


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    """numba can write neither beside the sources nor in the user's cache; the temporary directory is tmp_path."""
    # a copy of the environment: what ensure_cache_dir sets goes with the test
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"})
    monkeypatch.setattr(_numba_cache, "_can_write", lambda d: d.startswith(str(tmp_path)))
    monkeypatch.setattr(_numba_cache._tempfile, "gettempdir", lambda: str(tmp_path))
    return tmp_path


def test_a_private_directory_when_numba_could_write_nowhere(nowhere, monkeypatch):
    """numba's cache=True raised "no locator available" at import (hpc.kernels, hpc.mpi and hpc.ml unusable for a
    user of a read-only install whose home is not writable): NUMBA_CACHE_DIR gets a directory of the user's own."""
    import numba.core.config as numba_config

    monkeypatch.setattr(numba_config, "CACHE_DIR", numba_config.CACHE_DIR)
    chosen = _numba_cache.ensure_cache_dir()
    assert chosen == str(nowhere / f"hpc-numba-cache-{os.getuid()}") == os.environ["NUMBA_CACHE_DIR"]
    assert numba_config.CACHE_DIR == chosen  # numba was imported already: its setting follows
    assert stat.S_IMODE(os.stat(chosen).st_mode) & 0o077 == 0


def test_nothing_changes_where_numba_can_write_or_the_user_chose(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert _numba_cache.ensure_cache_dir() is None and os.environ["NUMBA_CACHE_DIR"] == str(tmp_path)
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(_numba_cache, "_can_write", lambda d: True)
    assert _numba_cache.ensure_cache_dir() is None and "NUMBA_CACHE_DIR" not in os.environ


def test_a_directory_someone_else_may_write_is_not_taken(nowhere):
    """/tmp is shared: a directory of the expected name that others may write is refused (numba raises as before)."""
    taken = nowhere / f"hpc-numba-cache-{os.getuid()}"
    taken.mkdir()
    taken.chmod(0o777)
    assert _numba_cache.ensure_cache_dir() is None and "NUMBA_CACHE_DIR" not in os.environ
