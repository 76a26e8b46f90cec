"""Make a pip-installed TBB visible to numba, so that ``pip install tbb`` gives numba's TBB threading layer.

numba picks its threading layer when the first parallel function runs: TBB if it can load ``libtbb.so.12``, else
OpenMP, else its own workqueue. It loads the library by name. pip puts the ``tbb`` wheel's library in
``<prefix>/lib``, and the dynamic loader does not look there in a virtual environment or a ``--user`` install, so
there numba quietly falls back to OpenMP (numba issue 6108, open since 2020). Loading the library by its full path
first makes the later loads by name find it: the loader matches a library already loaded by its soname. numba
still chooses: TBB first unless ``NUMBA_THREADING_LAYER`` or ``NUMBA_THREADING_LAYER_PRIORITY`` says otherwise.

Why it matters: with the OpenMP layer, each short parallel kernel called right after a NumPy BLAS product waited
milliseconds for the cores BLAS's threads still spun on (on a 2-core VM), and under GNU OpenMP a child forked after
a parallel kernel cannot run one. docs/kernels.md ("Parallel kernels next to BLAS") has the measured trade.
"""

from __future__ import annotations

import ctypes as _ctypes
import os as _os
import site as _site
import sys as _sys
import sysconfig as _sysconfig

__all__ = ["LIBRARY", "library_path", "load_pip_tbb"]

#: the name numba loads (``numba.np.ufunc.parallel``) and its TBB extension links against
LIBRARY = "libtbb.so.12"

#: values of NUMBA_THREADING_LAYER (numba lower-cases it) under which numba may choose TBB; the others name OpenMP
#: or the workqueue, or are not numba's
_MAY_CHOOSE_TBB = ("default", "safe", "forksafe", "threadsafe", "tbb")


def library_path() -> str | None:
    """Return the path of the ``tbb`` wheel's ``libtbb.so.12`` where pip installs it, or ``None`` if absent.

    Looks in ``lib/`` under the install scheme's data directory (the environment's prefix), then under the user
    base (``pip install --user``) where this interpreter reads the user site (not in a virtual environment, nor
    under ``python -s`` or ``-I``), in that order; relative paths are ignored.
    """
    bases = [_sysconfig.get_path("data"), _sys.prefix]
    if _site.ENABLE_USER_SITE:
        bases.append(_site.getuserbase())
    for base in dict.fromkeys(b for b in bases if b and _os.path.isabs(b)):
        path = _os.path.join(base, "lib", LIBRARY)
        if _os.path.isfile(path):
            return path
    return None


def load_pip_tbb() -> str | None:
    """Load the ``tbb`` wheel's library (process-wide) so numba's TBB layer can use it; return its path or ``None``.

    Does nothing (``None``) off Linux, where no ``tbb`` wheel is installed, and where ``NUMBA_THREADING_LAYER``
    names a layer other than TBB. A library that fails to load is left to numba, which then reports or falls back
    as it would have; this never raises. Loading it does not choose the layer: numba still decides at its first
    parallel function, and one that has already run keeps the layer it chose.
    """
    if not _sys.platform.startswith("linux"):
        return None
    layer = _os.environ.get("NUMBA_THREADING_LAYER")
    if layer is not None and layer.lower() not in _MAY_CHOOSE_TBB:
        return None
    path = library_path()
    if path is None:
        return None
    try:
        _ctypes.CDLL(path, mode=_ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    return path
