"""joblib's own tests, run on the "hpc" backend: every test that joblib parametrizes with "threading".

joblib checks its backends by parametrizing a ``backend`` argument (``PARALLEL_BACKENDS``, ``ALL_VALID_BACKENDS``,
``RETURN_GENERATOR_BACKENDS``, the ``BACKENDS`` registry, literal lists). This module collects the tests of the joblib
modules in ``JOBLIB_MODULES`` again, with "hpc" added wherever they name "threading", and runs the hpc variants only
(the others are joblib's own business):

1. ``hpc.iter.joblib_backend`` is imported first, so that joblib's test modules, which build their backend lists from
   the registry when they are imported, hold "hpc" too.
2. In a ``parametrize`` mark over an argument named "backend" or "..._backend", every row that names "threading" (or
   holds a ``ThreadingBackend()``) gets a twin with "hpc" (``HpcBackend()``) there; in a row of several values only
   the backend positions change: ``("threading", "loky", True)`` has the twin ``("hpc", "loky", True)``.
3. A test's backend marks merge into one mark that keeps the rows in which hpc takes part: for a single backend
   argument, the hpc rows; for two (parent/child, outer/inner), every pair with hpc on one side or both, so hpc runs
   inside loky workers (which know "hpc" through hpc-joblib.pth) and loky inside hpc batches. The ids name the sides:
   ``test_nested_loop[parent=loky-child=hpc]``.
4. A copy of each test function with such a mark, carrying the rebuilt marks, is put in this module, where pytest
   collects it under its own name; joblib's module is left as it was, and its other tests are not collected here.
5. A test that fails on hpc by design is an expected failure (strict: it fails the run once it passes), with its
   reason in ``EXPECTED_FAILURES``; docs/differences.md lists them too. joblib's own xfail marks stay, except where
   ``JOBLIB_XFAILS_NOT_FOR_HPC`` says why they do not apply to hpc.

Each test runs on a pool of its own (``_pool_of_its_own``). The marks joblib's tests carry (``thread_unsafe``,
``no_cover``) are registered in pyproject.toml. The warnings joblib's tests provoke on purpose (a dropped call, a
process backend nested in threads) are filtered here, as the threading variants give them too.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from joblib._parallel_backends import ThreadingBackend

from hpc import ThreadPool, current_num_threads
from hpc.iter.joblib_backend import NAME, HpcBackend  # registers "hpc" before joblib's test modules are imported

#: the joblib test modules whose "threading" tests run here (the others test no backend, or only process backends)
JOBLIB_MODULES = [
    "joblib.test.test_parallel",
    "joblib.test.test_config",
    "joblib.test.test_backports",
    "joblib.test.test_store_backends",
]

_NESTING = "by design: nested calls stay on hpc, on the worker's pool (joblib: threading, then sequential)"
_N_JOBS_NONE = "n_jobs=None means all threads of the pool (joblib: 1)"

#: test name -> why it fails on hpc (and passes on threading); every hpc variant of the test is expected to fail
EXPECTED_FAILURES: dict[str, str] = {
    # asserts that the batches' nested calls run on ThreadingBackend, and that Parallel() there means 1 job
    "test_nested_backend_context_manager": f"{_NESTING}; {_N_JOBS_NONE}",
    # asserts (HpcBackend, 0), (ThreadingBackend, 1), (SequentialBackend, 2) for three nested levels
    "test_nested_parallelism_limit": _NESTING,
}

#: test name -> why joblib's own xfail mark does not apply to hpc: the test runs as a plain test here
JOBLIB_XFAILS_NOT_FOR_HPC: dict[str, str] = {
    "test_nested_exception_dispatch": "joblib's xfail is about loky (joblib/loky#255); hpc keeps the nested frames",
}

#: test name -> why its rows with an hpc parent run as the test below (with joblib's assertion for a threading
#: parent) instead: joblib relaxes its check for "threading" by name, which an "hpc" parent, threads too, misses
THREADS_PARENT_RELAXED: dict[str, str] = {
    "test_nested_parallel_warnings": "warnings.catch_warnings is not thread safe: a batch may record another "
    "thread's warning and none of its own (joblib asserts any(res) for threading, all(res) otherwise)",
}

#: for every test here: warnings that joblib's tests provoke on purpose (a dropped call, loky nested in threads)
_MODULE_MARKS = [
    pytest.mark.filterwarnings("ignore:.*tasks which were still being processed by the workers:UserWarning").mark,
    pytest.mark.filterwarnings("ignore:.*-backed parallel loops cannot be nested below threads:UserWarning").mark,
]


@pytest.fixture(autouse=True)
def _pool_of_its_own() -> Iterator[None]:
    """Run each test's calls on a pool of its own, of the default pool's size (so the shared-pool path is the one
    tested): the batches that joblib's tests leave running on purpose (``sleep(10)`` after a timeout, ``sleep(30)``
    in a dropped generator) then keep its threads, not those of the pool that the rest of the suite runs on."""
    pool = ThreadPool(current_num_threads())
    with pool:
        yield
    pool.shutdown(wait=False)


def _is_backend_arg(name: str) -> bool:
    return name == "backend" or name.endswith("_backend")  # backend, parent_backend, inner_backend, ...


def _is_threading(value: Any) -> bool:
    return value == "threading" or type(value) is ThreadingBackend


def _is_hpc(value: Any) -> bool:
    return value == NAME or isinstance(value, HpcBackend)


def _to_hpc(value: Any) -> Any:
    if isinstance(value, str):
        return NAME if value == "threading" else value
    return HpcBackend() if type(value) is ThreadingBackend else value


def _argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0]
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)


def _with_hpc(names: list[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows``, and after each that names "threading" for a backend argument, that row with hpc in its place."""
    out: dict[str, tuple[Any, ...]] = {}  # by id: the registry may hold "hpc" already, besides "threading"
    for row in rows:
        out.setdefault(_row_id(row), row)
        if any(_is_threading(v) for name, v in zip(names, row) if _is_backend_arg(name)):
            hpc_row = tuple(_to_hpc(v) if _is_backend_arg(name) else v for name, v in zip(names, row))
            out.setdefault(_row_id(hpc_row), hpc_row)
    return list(out.values())


def _hpc_marks(name: str, marks: list[pytest.Mark]) -> list[pytest.Mark] | None:
    """``marks``, with the backend parametrizations merged into one that runs hpc only; None if none runs hpc."""
    backend_marks = [m for m in marks if m.name == "parametrize" and any(map(_is_backend_arg, _argnames(m)))]
    names: list[str] = []
    rows: list[tuple[Any, ...]] = [()]
    for mark in backend_marks:
        assert set(mark.kwargs) <= {"ids"} and len(mark.args) == 2, f"not handled: {name}: {mark}"  # ids: ours
        mark_names = _argnames(mark)
        mark_rows = [tuple(row) if len(mark_names) > 1 else (row,) for row in mark.args[1]]
        names += mark_names
        rows = [row + more for row in rows for more in _with_hpc(mark_names, mark_rows)]
    rows = [row for row in rows if any(_is_hpc(v) for n, v in zip(names, row) if _is_backend_arg(n))]
    if name in THREADS_PARENT_RELAXED:
        rows = [row for row in rows if not any(_is_hpc(v) for n, v in zip(names, row) if n == "parent_backend")]
    if not rows:
        return None
    ids = [_row_id(row, names if sum(map(_is_backend_arg, names)) > 1 else None) for row in rows]
    merged = pytest.mark.parametrize(names, rows, ids=ids).mark
    return [merged] + [m for m in marks if all(m is not b for b in backend_marks)]


def _row_id(row: tuple[Any, ...], names: list[str] | None = None) -> str:
    """The id of a row: "hpc-True", or with several backend arguments "parent=loky-child=hpc"."""
    values = [str(v) if v is None or isinstance(v, (str, int, float)) else f"{type(v).__name__}()" for v in row]
    if names is not None:
        values = [f"{n.removesuffix('_backend')}={v}" if _is_backend_arg(n) else v for n, v in zip(names, values)]
    return "-".join(values)


def _hpc_tests(module: types.ModuleType) -> Iterator[tuple[str, Callable[..., Any]]]:
    """Copies of the test functions of ``module`` that joblib parametrizes with threading, parametrized with hpc."""
    module_marks = getattr(module, "pytestmark", [])  # a decorator or a list of them; applies to every test
    module_marks = [getattr(m, "mark", m) for m in (module_marks if isinstance(module_marks, list) else [module_marks])]
    for name, func in vars(module).items():
        if not (name.startswith("test") and isinstance(func, types.FunctionType)):
            continue
        marks = _hpc_marks(name, list(getattr(func, "pytestmark", [])))
        if marks is None:
            continue
        if name in JOBLIB_XFAILS_NOT_FOR_HPC:
            marks = [mark for mark in marks if mark.name != "xfail"]
        if name in EXPECTED_FAILURES:
            marks.append(pytest.mark.xfail(reason=EXPECTED_FAILURES[name], strict=True).mark)
        copy = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__, func.__closure__)
        copy.__dict__.update(func.__dict__)
        copy.__kwdefaults__, copy.__qualname__, copy.__doc__ = func.__kwdefaults__, func.__qualname__, func.__doc__
        copy.pytestmark = marks + module_marks + _MODULE_MARKS
        yield name, copy


def _collect() -> dict[str, Callable[..., Any]]:
    tests: dict[str, Callable[..., Any]] = {}
    defined: set[str] = set()
    for module_name in JOBLIB_MODULES:
        module = pytest.importorskip(module_name, reason="this joblib was installed without its tests")
        defined |= set(vars(module))
        for name, test in _hpc_tests(module):
            assert name not in tests, f"{name} is defined in two of {JOBLIB_MODULES}"
            tests[name] = test
    unknown = (set(EXPECTED_FAILURES) | set(JOBLIB_XFAILS_NOT_FOR_HPC)) - set(tests)
    unknown |= set(THREADS_PARENT_RELAXED) - defined
    assert not unknown, f"tests named above but not collected here (or not in joblib): {sorted(unknown)}"
    return tests


globals().update(_collect())


@pytest.mark.parametrize("child_backend", ["loky", "multiprocessing"])
def test_nested_parallel_warnings_under_an_hpc_parent(child_backend):
    """joblib's test_nested_parallel_warnings with the hpc parent, asserted as joblib asserts it for its threading
    parent (THREADS_PARENT_RELAXED): no warning with one inner job; a process backend nested in hpc's threads warns,
    seen by one batch at least."""
    from joblib import Parallel, delayed
    from joblib.test.test_parallel import _assert_warning_nested

    Parallel(n_jobs=2, backend=NAME)(
        delayed(_assert_warning_nested)(backend=child_backend, inner_n_jobs=1, expected=False) for _ in range(5)
    )
    res = Parallel(n_jobs=2, backend=NAME)(
        delayed(_assert_warning_nested)(backend=child_backend, inner_n_jobs=2, expected=True) for _ in range(5)
    )
    assert any(res)
