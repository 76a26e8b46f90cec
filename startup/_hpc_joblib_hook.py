"""Run at interpreter start-up by ``hpc-joblib.pth``: let joblib find the "hpc" backend in any process.

Loads ``hpc/iter/_joblib_hook.py`` by its path, without importing the hpc package (which brings NumPy and numba:
too much for every Python start), and installs its lazy registration: when joblib is imported, "hpc" becomes a
backend name whose first use imports hpc. Never raises: a broken install must not break every Python start.
"""

from __future__ import annotations


def _install() -> None:
    import importlib.util
    import os
    import sys

    spec = importlib.util.find_spec("hpc")  # locates the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        return
    path = os.path.join(list(spec.submodule_search_locations)[0], "iter", "_joblib_hook.py")
    hook_spec = importlib.util.spec_from_file_location("_hpc_joblib_hook_impl", path)
    if hook_spec is None or hook_spec.loader is None:
        return
    hook = importlib.util.module_from_spec(hook_spec)
    hook_spec.loader.exec_module(hook)
    sys.modules["_hpc_joblib_hook_impl"] = hook
    hook.install(lazy=True)


try:
    _install()
except Exception:  # noqa: BLE001 - see the module docstring
    pass
