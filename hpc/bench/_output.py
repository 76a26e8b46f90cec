"""Where ``hpc bench`` and its scripts write: the checks made before a run (so that a bad path fails at once, not
after minutes of benchmarks) and the JSON written all at once."""

from __future__ import annotations

import contextlib as _contextlib
import json as _json
import os as _os
from pathlib import Path as _Path
from typing import Any as _Any

__all__ = ["unplottable", "unwritable", "write_json"]


def unwritable(path: str) -> str | None:
    """Return why ``path`` cannot be written (empty, a directory, a missing or read-only folder), or ``None``."""
    if not path.strip():
        return "an empty path"
    target = _Path(path)
    if target.is_dir():
        return "is a directory"
    folder = target.parent
    if not folder.is_dir():
        return f"no such directory: {folder}"
    if not _os.access(folder, _os.W_OK | _os.X_OK) or (target.exists() and not _os.access(target, _os.W_OK)):
        return "not writable"
    return None


def unplottable(path: str) -> str | None:
    """Return why matplotlib cannot save to ``path`` (an extension it has no format for), or ``None``."""
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    extension = _Path(path).suffix.lstrip(".").lower()
    if extension and extension not in formats:
        return f"matplotlib cannot write .{extension} files (formats: {', '.join(sorted(formats))})"
    return None


def write_json(path: str, data: _Any) -> None:
    """Write ``data`` to ``path`` all at once: a failure leaves no partial file and an older file untouched.

    Raises:
        OSError: naming ``path`` (not the temporary file beside it that the data go to first).
    """
    target = _Path(path)
    tmp = target.with_name(f".{target.name}.{_os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            _json.dump(data, f, indent=2)
            f.write("\n")
        _os.replace(tmp, target)
    except BaseException as exc:
        with _contextlib.suppress(OSError):
            _os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
