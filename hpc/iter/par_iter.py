"""``ParIter``: the parallel iterator users chain adapters and terminals on (Rayon's ``ParallelIterator``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from hpc import config as _config
from hpc.iter import indexed as _ix
from hpc.iter import stages as _st
from hpc.iter import terminals as _t
from hpc.iter.plumbing.drive import execute
from hpc.iter.plumbing.plan import Plan

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ParIter"]

T = TypeVar("T")
U = TypeVar("U")
A = TypeVar("A")



def _check_count(name: str, n: Any, minimum: int) -> int:
    """Return ``n`` as an int if it is an integer of any type (a NumPy int too, as ``range`` takes one; not a bool or
    a float) of at least ``minimum``, else raise ``ValueError``."""
    count = _config.whole_number(n)
    if count is None or count < minimum:
        kind = "a positive int" if minimum == 1 else "a non-negative int"
        raise ValueError(f"{name} must be {kind}; got {n!r}")
    return count


class ParIter(Generic[T]):
    """A lazy parallel iterator. Adapters return a new ``ParIter``; terminals run it and return a result.

    Build one with :func:`~hpc.par_iter`, :func:`~hpc.par_range`, :func:`~hpc.par_chunks` or
    :func:`~hpc.par_bridge`. Nothing runs until a terminal (``collect``, ``sum``, ``for_each``, ...) is called,
    and every terminal call runs the whole chain again.

    Guarantees that hold for every chain: results keep input order where the terminal has an order (``collect``,
    ``to_numpy``, ``find_first``, ``partition``, ...); chunk boundaries depend only on the input length and
    ``with_min_len``/``with_max_len``, and partial results combine in a fixed tree keyed by chunk index, so float
    ``sum()`` and ``reduce()`` give the same bits on any number of threads and on every backend.

    Example:
        >>> from hpc import par_iter
        >>> par_iter(range(10)).map(lambda x: x * x).filter(lambda x: x % 2 == 0).sum()
        120
    """

    __slots__ = ("_build", "_backend", "_min_len", "_max_len")

    def __init__(
        self,
        build: Callable[[ParIter[Any]], Plan],
        backend: str | None = None,
        min_len: int = 1,
        max_len: int | None = None,
    ) -> None:
        self._build = build
        self._backend = backend
        self._min_len = min_len
        self._max_len = max_len

    def __repr__(self) -> str:
        return f"<hpc.ParIter backend={self._backend or 'default'}>"

    # ------------------------------------------------------------------------------ plumbing

    # The plan is built when a terminal runs, by ``_build(it)``, ``it`` being the iterator that runs: settings given
    # last (with_backend, with_min_len, with_max_len) reach every part, also the items a positional adapter collects.

    def _derive(self, step: Callable[[Plan], Plan]) -> ParIter[Any]:
        build = self._build
        return ParIter(lambda it: step(build(it)), self._backend, self._min_len, self._max_len)

    def _derive_positional(self, make: Callable[[_ix.Indexed], _ix.Indexed]) -> ParIter[Any]:
        """An iterator whose node is ``make(node)``, ``node`` this one's items as an indexed node (see _indexed)."""
        build = self._build
        return ParIter(lambda it: Plan(make(it._indexed(build(it)))), self._backend, self._min_len, self._max_len)

    def _with(self, **settings: Any) -> ParIter[T]:
        values = {"backend": self._backend, "min_len": self._min_len, "max_len": self._max_len, **settings}
        return ParIter(self._build, **values)

    def _plan(self) -> Plan:
        plan = self._build(self)
        return Plan(plan.node, plan.stages, self._min_len, self._max_len)

    def _indexed(self, plan: Plan) -> _ix.Indexed:
        """Return the plan's items as an indexed node, collecting them first if a stage hid their positions."""
        if not plan.stages:
            return plan.node
        items = execute(Plan(plan.node, plan.stages, self._min_len, self._max_len), _t.Collect(), self._backend)
        return _ix.SequenceSource(items)

    def _other(self, other: Any) -> ParIter[Any]:
        from hpc.iter.sources import par_iter

        return other if isinstance(other, ParIter) else par_iter(other)

    def _then(self, plan: Plan, stage: Any) -> Plan:
        """Return ``plan`` followed by ``stage``: folded into the indexed node when it keeps positions."""
        if stage.one_to_one and not plan.stages:
            return Plan(_ix.OneToOne(plan.node, stage))
        return Plan(plan.node, (*plan.stages, stage))

    def _run(self, terminal: Any, progress: bool) -> Any:
        return execute(self._plan(), terminal, self._backend, progress)

    # ------------------------------------------------------------------------------ settings

    def with_backend(self, backend: str) -> ParIter[T]:
        """Return the same iterator run on ``backend``: one of ``hpc.config.BACKENDS`` (``"auto"``, ``"threads"``,
        ``"processes"``, ``"serial"``, ``"mpi"``).

        ``auto`` (the default unless ``HPC_BACKEND`` says otherwise) runs chunk-level work (``map_chunks``,
        ``par_chunks`` kernels, plain sources) and side effects (``for_each``, ``inspect``) on threads, and per-item
        Python functions on processes when the first chunk predicts a run long enough to pay for them.

        Note:
            On ``processes`` the functions run in other processes: they must be picklable by cloudpickle (lambdas
            and closures are), and changes they make to objects of the calling process are not seen there.
        """
        if backend not in _config.BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(_config.BACKENDS)}; got {backend!r}")
        return self._with(backend=backend)

    def with_min_len(self, n: int) -> ParIter[T]:
        """Return the same iterator with chunks of at least ``n`` items (fewer, larger chunks)."""
        return self._with(min_len=_check_count("min_len", n, 1))

    def with_max_len(self, n: int) -> ParIter[T]:
        """Return the same iterator with chunks of at most ``n`` items (more, smaller chunks)."""
        return self._with(max_len=_check_count("max_len", n, 1))

    # ------------------------------------------------------------------------------ adapters

    def map(self, fn: Callable[[T], U]) -> ParIter[U]:
        """Return an iterator of ``fn(item)``.

        Example:
            >>> par_iter([1, 2, 3]).map(lambda x: x * 10).collect()
            [10, 20, 30]
        """
        return self._derive(lambda p: self._then(p, _st.Map(fn)))

    def map_init(self, init: Callable[[], A], fn: Callable[[A, T], U]) -> ParIter[U]:
        """Return an iterator of ``fn(state, item)``, where ``state = init()``.

        ``init`` runs exactly once per worker that takes part, per terminal call: once per worker thread on
        ``threads``, once per worker process on ``processes``, once on ``serial``; never once per item, never on
        the calling thread unless it is itself a worker or the run is serial. Under ``auto`` the first chunk is
        timed on a pool thread: when the rest stays on threads that thread keeps its state (at most one ``init``
        per pool thread); when the rest moves to processes, the probing thread's ``init`` is one more than the
        worker processes' (at most ``workers + 1`` calls: a state cannot move between processes). One more
        ``init`` on a thread where a nested parallel call inside ``fn`` lets it take another chunk of the same call
        while an item is in progress there: that chunk gets a state of its own (two items in progress never share
        one). Use it for scratch buffers or random generators that are costly to build.

        Example:
            >>> par_iter([1, 2, 3]).map_init(lambda: [0], lambda acc, x: x + 1).collect()
            [2, 3, 4]
        """
        return self._derive(lambda p: self._then(p, _st.MapInit(init, fn)))

    def inspect(self, fn: Callable[[T], Any]) -> ParIter[T]:
        """Return the same items, calling ``fn(item)`` on each as it passes (for debugging and counting).

        Note:
            ``fn`` runs on worker threads, in no particular order across chunks.
        """
        return self._derive(lambda p: self._then(p, _st.Inspect(fn)))

    def filter(self, predicate: Callable[[T], Any]) -> ParIter[T]:
        """Return an iterator of the items for which ``predicate(item)`` is true, in order.

        Example:
            >>> par_iter(range(10)).filter(lambda x: x % 3 == 0).collect()
            [0, 3, 6, 9]
        """
        return self._derive(lambda p: self._then(p, _st.Filter(predicate)))

    def filter_map(self, fn: Callable[[T], U | None]) -> ParIter[U]:
        """Return an iterator of ``fn(item)`` for the items where it is not ``None``.

        Example:
            >>> par_iter(["1", "x", "3"]).filter_map(lambda s: int(s) if s.isdigit() else None).collect()
            [1, 3]
        """
        return self._derive(lambda p: self._then(p, _st.FilterMap(fn)))

    def flat_map(self, fn: Callable[[T], Iterable[U]]) -> ParIter[U]:
        """Return an iterator of the items of each ``fn(item)``, in order.

        Example:
            >>> par_iter([1, 2, 3]).flat_map(lambda n: range(n)).collect()
            [0, 0, 1, 0, 1, 2]
        """
        return self._derive(lambda p: self._then(p, _st.FlatMap(fn)))

    def map_chunks(self, kernel: Callable[[Any], Any]) -> ParIter[Any]:
        """Return an iterator of the items of ``kernel(chunk)``, called once per chunk on a NumPy array.

        The numeric fast path: on an array source each chunk is a view (no copy), and an ``@njit(nogil=True)``
        kernel runs on pool threads in parallel with no per-item Python. The kernel returns an array (or any
        iterable) whose entries become the items downstream.

        Example:
            >>> import numpy as np
            >>> par_iter(np.arange(6.0)).map_chunks(lambda a: a * 2).to_numpy()
            array([ 0.,  2.,  4.,  6.,  8., 10.])
        """
        return self._derive(lambda p: self._then(p, _st.MapChunks(kernel)))

    @overload
    def fold(self, identity: Callable[[], A], op: Callable[[A, T], A]) -> ParIter[A]: ...
    @overload
    def fold(self, identity: A, op: Callable[[A, T], A]) -> ParIter[A]: ...

    def fold(self, identity: Any, op: Callable[[Any, T], Any]) -> ParIter[Any]:
        """Return an iterator of per-chunk accumulators, each ``functools.reduce(op, chunk, identity())``.

        ``identity`` is a zero-argument callable returning a fresh accumulator (as in Rayon), or a value, as in
        :meth:`reduce`. Each chunk starts from it: give a callable for a mutable accumulator (a list, a dict),
        which ``op`` may then update in place. As in Rayon, ``fold`` is lazy: finish with a terminal, usually
        ``reduce`` or ``sum``. The number of accumulators is the number of chunks, which depends only on the input
        length.

        Example:
            >>> par_range(100).fold(lambda: 0, lambda acc, x: acc + x).sum()
            4950
            >>> par_range(100).fold(0, lambda acc, x: acc + x).sum()
            4950
        """
        return self._derive(lambda p: self._then(p, _st.Fold(identity, op)))

    def enumerate(self) -> ParIter[tuple[int, T]]:
        """Return an iterator of ``(index, item)`` pairs.

        Example:
            >>> par_iter("abc").enumerate().collect()
            [(0, 'a'), (1, 'b'), (2, 'c')]
        """
        return self._derive_positional(_ix.Enumerate)

    def zip(self, other: ParIter[U] | Iterable[U]) -> ParIter[tuple[T, U]]:
        """Return an iterator of pairs ``(a, b)`` by position, as long as the shorter side.

        Example:
            >>> par_iter([1, 2, 3]).zip("ab").collect()
            [(1, 'a'), (2, 'b')]
        """
        right = self._other(other)
        return self._derive_positional(lambda node: _ix.Zip(node, right._indexed(right._build(right))))

    def chain(self, other: ParIter[U] | Iterable[U]) -> ParIter[T | U]:
        """Return an iterator of this iterator's items followed by ``other``'s.

        Example:
            >>> par_iter([1, 2]).chain([3]).collect()
            [1, 2, 3]
        """
        right = self._other(other)
        return self._derive_positional(lambda node: _ix.Chain(node, right._indexed(right._build(right))))

    def chunks(self, n: int) -> ParIter[list[T]]:
        """Return an iterator of lists of ``n`` consecutive items (the last may be shorter).

        Example:
            >>> par_range(5).chunks(2).collect()
            [[0, 1], [2, 3], [4]]
        """
        n = _check_count("chunk size", n, 1)
        return self._derive_positional(lambda node: _ix.Chunks(node, n))

    def step_by(self, k: int) -> ParIter[T]:
        """Return every ``k``-th item, starting with the first.

        Example:
            >>> par_range(10).step_by(4).collect()
            [0, 4, 8]
        """
        k = _check_count("step", k, 1)
        return self._derive_positional(lambda node: _ix.StepBy(node, k))

    def skip(self, n: int) -> ParIter[T]:
        """Return all but the first ``n`` items.

        Example:
            >>> par_range(5).skip(3).collect()
            [3, 4]
        """
        n = _check_count("n", n, 0)
        return self._derive_positional(lambda node: _ix.Skip(node, n))

    def take(self, n: int) -> ParIter[T]:
        """Return the first ``n`` items.

        Example:
            >>> par_range(5).take(2).collect()
            [0, 1]
        """
        n = _check_count("n", n, 0)
        return self._derive_positional(lambda node: _ix.Take(node, n))

    # ------------------------------------------------------------------------------ terminals

    def collect(self, *, progress: bool = False) -> list[T]:
        """Return the items as a list, in input order.

        ``progress=True`` (every terminal has it) shows a tqdm bar counting source items.

        Example:
            >>> par_range(4).map(str).collect()
            ['0', '1', '2', '3']
        """
        return self._run(_t.Collect(), progress)

    def to_numpy(self, dtype: Any = None, *, progress: bool = False) -> np.ndarray:
        """Return the items as a NumPy array, in input order (arrays from ``map_chunks`` are concatenated).

        An empty iterator whose items are an array's rows unchanged (``par_iter(array)``, maybe through ``take``,
        ``skip`` or ``step_by``) gives an array of shape ``(0, *array.shape[1:])`` and the array's dtype (or
        ``dtype``). After a function (``map``, ``map_chunks``, ``filter``, ...) the shape and dtype of its results
        are unknown without calling it: an empty result is ``numpy.asarray([], dtype)``, shape ``(0,)``, float64
        unless ``dtype`` is given.

        Example:
            >>> par_range(4).map(float).to_numpy()
            array([0., 1., 2., 3.])
        """
        plan = self._plan()
        return execute(plan, _t.ToNumpy(dtype, _t.array_row(plan)), self._backend, progress)

    def for_each(self, fn: Callable[[T], Any], *, progress: bool = False) -> None:
        """Call ``fn(item)`` on every item, for its side effects, in no particular order across chunks.

        Runs on threads under ``auto`` so the side effects are visible to the caller.
        """
        self._run(_t.ForEach(fn), progress)

    def reduce(self, identity: Any, op: Callable[[T, T], T], *, progress: bool = False) -> T:
        """Return the items combined with ``op``, starting each chunk from ``identity``.

        ``identity`` is a value or a zero-argument callable returning one (as in Rayon); it may be used once per
        chunk, so it must be neutral for ``op``. An empty iterator returns the identity.

        Note:
            ``op`` must be associative; it is applied in a fixed tree, so the result is deterministic for any
            thread count even when ``op`` is only approximately associative (float addition).

        Example:
            >>> par_range(1, 6).reduce(1, lambda a, b: a * b)
            120
        """
        return self._run(_t.Reduce(identity, op), progress)

    def reduce_with(self, op: Callable[[T, T], T], *, progress: bool = False) -> T | None:
        """Return the items combined with ``op``, or ``None`` for an empty iterator.

        Example:
            >>> par_iter([3, 1, 2]).reduce_with(max), par_iter([]).reduce_with(max)
            (3, None)
        """
        return self._run(_t.ReduceWith(op), progress)

    def sum(self, *, progress: bool = False) -> Any:
        """Return the sum of the items (0 for an empty iterator); bitwise deterministic for floats.

        Example:
            >>> par_iter([0.1] * 10).sum() == par_iter([0.1] * 10).with_backend("serial").sum()
            True
        """
        return self._run(_t.Sum(), progress)

    def product(self, *, progress: bool = False) -> Any:
        """Return the product of the items (1 for an empty iterator).

        Example:
            >>> par_range(1, 5).product()
            24
        """
        return self._run(_t.Product(), progress)

    def min(self, *, progress: bool = False) -> T | None:
        """Return the smallest item, or ``None`` for an empty iterator (Rayon's ``Option``, not a ValueError).

        Example:
            >>> par_iter([3, 1, 2]).min()
            1
        """
        return self._run(_t.Min(), progress)

    def max(self, *, progress: bool = False) -> T | None:
        """Return the largest item, or ``None`` for an empty iterator.

        Example:
            >>> par_iter([3, 1, 2]).max()
            3
        """
        return self._run(_t.Max(), progress)

    def min_by_key(self, key: Callable[[T], Any], *, progress: bool = False) -> T | None:
        """Return the item with the smallest ``key(item)`` (the first of equal ones), or ``None`` if empty.

        Example:
            >>> par_iter(["bb", "a", "c"]).min_by_key(len)
            'a'
        """
        return self._run(_t.MinByKey(key), progress)

    def max_by_key(self, key: Callable[[T], Any], *, progress: bool = False) -> T | None:
        """Return the item with the largest ``key(item)`` (the first of equal ones, like ``builtins.max``).

        Note:
            Rayon returns the last of equal maxima; hpc follows Python's ``max``.

        Example:
            >>> par_iter(["a", "bb", "cc"]).max_by_key(len)
            'bb'
        """
        return self._run(_t.MaxByKey(key), progress)

    def count(self, *, progress: bool = False) -> int:
        """Return the number of items.

        Example:
            >>> par_range(10).filter(lambda x: x > 6).count()
            3
        """
        return self._run(_t.Count(), progress)

    def any(self, predicate: Callable[[T], Any], *, progress: bool = False) -> bool:
        """Return whether ``predicate`` is true for some item; stops starting chunks once one is found.

        Example:
            >>> par_range(100).any(lambda x: x == 42)
            True
        """
        return self._run(_t.Any_(predicate), progress)

    def all(self, predicate: Callable[[T], Any], *, progress: bool = False) -> bool:
        """Return whether ``predicate`` is true for every item (true for an empty iterator).

        Example:
            >>> par_range(100).all(lambda x: x < 100)
            True
        """
        return self._run(_t.All(predicate), progress)

    def find_any(self, predicate: Callable[[T], Any], *, progress: bool = False) -> T | None:
        """Return some item matching ``predicate`` (not necessarily the first), or ``None``.

        Note:
            Which match is returned may change from run to run; use :meth:`find_first` for the first one.

        Example:
            >>> par_range(100).find_any(lambda x: x % 50 == 49) in (49, 99)
            True
        """
        return self._run(_t.FindAny(predicate), progress)

    def find_first(self, predicate: Callable[[T], Any], *, progress: bool = False) -> T | None:
        """Return the first item (by position) matching ``predicate``, or ``None``.

        Example:
            >>> par_range(100).find_first(lambda x: x % 7 == 6)
            6
        """
        return self._run(_t.FindFirst(predicate), progress)

    def find_last(self, predicate: Callable[[T], Any], *, progress: bool = False) -> T | None:
        """Return the last item (by position) matching ``predicate``, or ``None``.

        Example:
            >>> par_range(100).find_last(lambda x: x % 7 == 6)
            97
        """
        return self._run(_t.FindLast(predicate), progress)

    def position_first(self, predicate: Callable[[T], Any], *, progress: bool = False) -> int | None:
        """Return the position of the first item matching ``predicate``, or ``None``.

        Example:
            >>> par_iter("hello").position_first(lambda c: c == "l")
            2
        """
        return self._run(_t.PositionFirst(predicate), progress)

    def partition(self, predicate: Callable[[T], Any], *, progress: bool = False) -> tuple[list[T], list[T]]:
        """Return ``(matching, not_matching)`` lists, each in input order.

        Example:
            >>> par_range(6).partition(lambda x: x % 2 == 0)
            ([0, 2, 4], [1, 3, 5])
        """
        return self._run(_t.Partition(predicate), progress)

    def unzip(self, *, progress: bool = False) -> tuple[list[Any], list[Any]]:
        """Return two lists from an iterator of pairs, in input order.

        Example:
            >>> par_iter([(1, "a"), (2, "b")]).unzip()
            ([1, 2], ['a', 'b'])
        """
        return self._run(_t.Unzip(), progress)
