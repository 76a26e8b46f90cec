"""Run at interpreter start-up by ``hpc-joblib.pth``: let joblib find the "hpc" backend in any process.

Loads ``hpc/iter/_joblib_hook.py`` by its path, without importing the hpc package (which brings NumPy and numba:
too much for every Python start), and installs its lazy registration: when joblib is imported, "hpc" becomes a
backend name whose first use imports hpc. Never raises: a broken install must not break every Python start.
"""

from __future__ import annotations


def _install() -> None:
    # importlib.machinery, not importlib.util: the latter brings contextlib, functools and collections (about 3 ms at
    # every Python start of the environment); its finder is asked only where hpc is not on sys.path (an editable
    # install's finder, which has imported importlib.util itself)
    import sys
    from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader

    spec = PathFinder.find_spec("hpc")  # locates the package; does not import it
    if spec is None:
        import importlib.util

        spec = importlib.util.find_spec("hpc")
    if spec is None or not spec.submodule_search_locations:
        return
    name = "_hpc_joblib_hook_impl"
    path = list(spec.submodule_search_locations)[0] + "/iter/_joblib_hook.py"
    loader = SourceFileLoader(name, path)
    hook = type(sys)(name)  # a module object, without importing types
    hook.__spec__, hook.__loader__, hook.__file__ = ModuleSpec(name, loader, origin=path), loader, path
    loader.exec_module(hook)
    sys.modules[name] = hook
    hook.install(lazy=True)


try:
    _install()
except Exception:  # noqa: BLE001 - see the module docstring
    pass
