"""K-means clustering by Lloyd's algorithm over every rank's rows (``sklearn.cluster.KMeans(algorithm="lloyd")``)."""

from __future__ import annotations

import math as _math
import numbers as _numbers
import warnings as _warnings
from typing import Any

import numpy as _np

from hpc.ml import _data, _kmeans_init, _lloyd, _random
from hpc.ml._base import Estimator, check_is_fitted, one_blas_thread, sklearn_class
from hpc.ml._blocks import Blocks
from hpc.ml._moments import centered_moments
from hpc.ml._progress import Progress as _Progress

__all__ = ["KMeans"]

_INITS = ("k-means++", "random", "k-means||")


class KMeans(Estimator):
    """K-means clustering of every rank's rows, with scikit-learn's parameters, answers and attributes.

    Each Lloyd iteration is one pass over the local row blocks (the GEMM-form assignment fused with the argmin
    and the per-cluster sums: :func:`hpc.kernels.kmeans_step`, a few groups of blocks per thread) and one
    reproducible reduction of the per-cluster sums, counts and changed labels (and the inertia, when ``verbose``
    reports it). As in scikit-learn, the data are centred first (distances lose fewer digits), the loop stops when
    no label changes or the centres move less than ``tol`` times the mean feature variance, and ``inertia_`` is
    computed from the final labels with exact distances. ``sample_weight`` weighs
    the rows as scikit-learn does: in the init's draws, the centres (weighted means) and the inertia.

    An :class:`hpc.cuda.DeviceArray` ``X`` is fitted on its device (the GPU twins; see docs/ml.md, "Fits on the
    GPU"): the same model on any number of ranks, to rounding the CPU fit's.

    ``fit`` and ``score`` are collective; ``predict`` and ``transform`` are local. ``cluster_centers_``,
    ``inertia_`` and ``n_iter_`` are the same bits on every rank and for any number of ranks, threads or split
    of the rows; ``labels_`` holds this rank's rows' labels.

    Args:
        n_clusters (int): the number of clusters.
        init (str or ndarray): ``"k-means++"`` (greedy, ``2 + log k`` trials per centre), ``"random"`` (k distinct
            rows), ``"k-means||"`` (Bahmani et al.: 5 rounds sampling ``2k`` rows each, then a weighted recluster),
            or an ``(n_clusters, n_features)`` array.
        n_init (int or "auto"): runs from different initializations; the lowest inertia wins. ``"auto"``: 1 for
            k-means++, k-means|| and an array, 10 for random.
        max_iter (int): Lloyd iterations per run.
        tol (float): relative tolerance on the centres' squared shift (times the mean feature variance).
        verbose (int): report each iteration's inertia and time on rank 0 (a tqdm bar on a terminal).
        random_state (None, int or RandomState): seeds the draws; rank 0's seed is used on every rank.
        copy_x (bool): accepted for scikit-learn; the data are never modified (the centred copy is a new array).
        algorithm (str): ``"lloyd"`` (``"elkan"`` is accepted and runs Lloyd: the same fixed points).

    Attributes:
        cluster_centers_ (ndarray (n_clusters, n_features)), labels_ (ndarray (local rows,), int32),
        inertia_ (float), n_iter_ (int), n_features_in_ (int).

    Example:
        >>> import numpy as np
        >>> from hpc import ml
        >>> X = np.array([[1.0, 2.0], [1.0, 4.0], [1.0, 0.0], [10.0, 2.0], [10.0, 4.0], [10.0, 0.0]])
        >>> km = ml.KMeans(n_clusters=2, init=np.array([[0.0, 0.0], [9.0, 9.0]])).fit(X)
        >>> km.cluster_centers_.tolist(), km.labels_.tolist()
        ([[1.0, 2.0], [10.0, 2.0]], [0, 0, 0, 1, 1, 1])
    """

    _estimator_type = "clusterer"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        n_init: Any = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        copy_x: bool = True,
        algorithm: str = "lloyd",
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm

    # -- parameters ----------------------------------------------------------------------------------------------

    def _checked_params(self) -> tuple[int, int]:
        k, max_iter, tol = self.n_clusters, self.max_iter, self.tol
        if not isinstance(k, _numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"n_clusters must be an int >= 1; got {k!r}")
        if not isinstance(max_iter, _numbers.Integral) or isinstance(max_iter, bool) or max_iter < 1:
            raise ValueError(f"max_iter must be an int >= 1; got {max_iter!r}")
        if not isinstance(tol, _numbers.Real) or isinstance(tol, bool) or not tol >= 0:
            raise ValueError(f"tol must be a float >= 0; got {tol!r}")
        if self.algorithm not in ("lloyd", "elkan"):
            raise ValueError(f"algorithm must be 'lloyd' or 'elkan'; got {self.algorithm!r}")
        is_array = not isinstance(self.init, str)
        if callable(self.init):
            raise ValueError("a callable init is not supported by hpc.ml.KMeans; pass an array or a name")
        if not is_array and self.init not in _INITS:
            raise ValueError(f"init must be one of {list(_INITS)} or an array of shape (n_clusters, n_features); "
                             f"got {self.init!r}")
        n_init = self.n_init
        if n_init == "auto":
            n_init = 10 if isinstance(self.init, str) and self.init == "random" else 1
        elif not isinstance(n_init, _numbers.Integral) or isinstance(n_init, bool) or n_init < 1:
            raise ValueError(f"n_init must be 'auto' or an int >= 1; got {n_init!r}")
        if is_array and n_init != 1:
            _warnings.warn(
                f"Explicit initial center position passed: performing only one init in KMeans instead of "
                f"n_init={n_init}.",
                RuntimeWarning,
                stacklevel=3,
            )
            n_init = 1
        return int(k), int(n_init)

    def _checked_for(self, X: Any) -> tuple[int, int, _np.ndarray | None, int]:
        """Return ``(n_clusters, n_init, the init array or None, this rank's seed)``, checked against ``X``'s features
        too: run by ``check_rows``, so a parameter bad on one rank raises on every rank instead of leaving the others
        waiting (``random_state`` may differ by rank, so an invalid one on a single rank must be caught here too)."""
        k, n_init = self._checked_params()
        given = None if isinstance(self.init, str) else self._initial_centres(k, X.shape[1])
        return k, n_init, given, _random.seed_from(self.random_state)

    def _initial_centres(self, k: int, d: int) -> _np.ndarray:
        centres = _np.array(self.init, dtype=_np.float64)  # a copy, never the caller's array
        if centres.ndim != 2 or centres.shape[0] != k:
            raise ValueError(f"The shape of the initial centers {centres.shape} does not match the number of "
                             f"clusters {k}.")
        if centres.shape[1] != d:
            raise ValueError(f"The shape of the initial centers {centres.shape} does not match the number of "
                             f"features of the data {d}.")
        if not _np.isfinite(centres).all():
            raise ValueError("init contains NaN or infinity")
        return centres

    # -- fit -----------------------------------------------------------------------------------------------------

    @one_blas_thread
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None, *, comm: Any = None) -> KMeans:
        """Cluster every rank's rows (collective), each weighted by ``sample_weight`` if given; return self."""
        comm = self._comm_for(comm, fitting=True)
        rows = self._fit_rows(comm, X, local_check=self._checked_for)
        k, n_init, given, seed = rows.checked
        weight = _data.agreed_sample_weight(comm, sample_weight, rows.X.shape[0])
        exponent = 0
        if weight is not None:
            _data.total_weight(comm, weight)
            top = float(weight.max()) if weight.shape[0] else 0.0
            exponent = _math.frexp(float(comm.allreduce(top, op="max")) if comm.size > 1 else top)[1]
        if rows.n_total < k:
            raise ValueError(f"n_samples={rows.n_total} should be >= n_clusters={k}.")
        d = rows.n_features
        progress = _Progress("KMeans", self.max_iter * n_init, self.verbose, comm.rank)
        # the weights ride with the rows (host memory, also beside device rows: the weighted sums are the host's)
        blocks = Blocks(comm, rows.counts, [rows.X] + ([weight] if weight is not None else []))
        # centred on the plain mean, and tol from the plain variances, as scikit-learn whatever the weights
        moments = centered_moments(blocks, d, diagonal=True)
        mean = moments.mean
        tol = float(_np.mean(moments.m2 / moments.n)) * self.tol if self.tol else 0.0
        dtype = rows.X.dtype
        shift = mean.astype(dtype)
        centred, offsets = _centred(blocks, shift)
        report = bool(self.verbose)  # rank-local (only rank 0 reports): rank 0's choice decides what every rank sums
        if comm.size > 1:
            seed, report = (int(v) for v in comm.bcast(_np.array([seed, report], _np.uint64), root=0))
        points = _kmeans_init.Points(
            blocks, seed, d, weighted=weight is not None, weight_exponent=exponent, rows=centred, offsets=offsets
        )
        best = None
        for run in range(n_init):
            if given is not None:
                centres = given - mean
            elif self.init == "k-means++":
                centres = _kmeans_init.kmeans_plusplus(points, k, run)
            elif self.init == "random":
                centres = _kmeans_init.random_rows(points, k, run)
            else:
                centres = _kmeans_init.kmeans_parallel(points, k, run)
            progress.note(f"initialization complete ({self.init if given is None else 'array'}, run {run})")
            result = _lloyd.lloyd(points, centres, self.max_iter, tol, progress, bool(report))
            if best is None or (result[1] < best[1] and not _same_clustering(comm, result[0], best[0], k)):
                best = result
        progress.close()
        labels, inertia, centres, n_iter = best
        self._comm = comm
        self._set_features(rows)
        self.cluster_centers_ = (centres + mean).astype(dtype)
        self.labels_ = blocks.to_local(labels).astype(_np.int32)
        self.inertia_ = float(inertia)
        self.n_iter_ = int(n_iter)
        present = _np.zeros(k, _np.int64)
        for part in labels:
            present |= _np.bincount(part, minlength=k) > 0
        distinct = int((comm.allreduce(present, op="max") if comm.size > 1 else present).sum())
        if distinct < k:
            _warnings.warn(
                f"Number of distinct clusters ({distinct}) found smaller than n_clusters ({k}). Possibly due to "
                "duplicate points in X.",
                sklearn_class("ConvergenceWarning"),
                stacklevel=2,
            )
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None, *, comm: Any = None) -> _np.ndarray:
        """Fit (collective); return this rank's rows' labels."""
        return self.fit(X, sample_weight=sample_weight, comm=comm).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None, *, comm: Any = None) -> _np.ndarray:
        """Fit (collective); return this rank's rows' distances to the centres."""
        return self.fit(X, sample_weight=sample_weight, comm=comm).transform(X)

    # -- local methods ------------------------------------------------------------------------------------------

    def _rows(self, X: Any) -> _np.ndarray:
        check_is_fitted(self, "cluster_centers_")
        return _data.check_predict_rows(X, self)

    def predict(self, X: Any) -> Any:
        """Return the nearest centre of each of this rank's rows (local).

        An :class:`hpc.cuda.DeviceArray` stays on its device: the labels come from the GPU twin of
        :func:`hpc.kernels.kmeans_assign` (on the host fallback without a GPU) as an int64 ``DeviceArray``.
        """
        from hpc import kernels

        if _data.is_device_array(X):
            return kernels.kmeans_assign(X, self._device_centres(X))[0]
        X = self._rows(X)
        # kmeans_assign's argmin is over direct distances: right however far the rows lie from the origin
        return kernels.kmeans_assign(X, self.cluster_centers_.astype(X.dtype))[0].astype(_np.int32)

    def _device_centres(self, X: Any) -> Any:
        """Return the centres on ``X``'s device in its dtype, after checking ``X`` (a DeviceArray)."""
        from hpc import cuda

        check_is_fitted(self, "cluster_centers_")
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}, but KMeans is expecting {self.n_features_in_} features as input.")
        if X.dtype not in (_np.float32, _np.float64):
            raise TypeError(f"X must be a float32 or float64 DeviceArray; got {X.dtype}")
        return cuda.to_device(self.cluster_centers_.astype(X.dtype), device=X.device_index)

    def get_feature_names_out(self, input_features: Any = None) -> _np.ndarray:
        """Return the names of :meth:`transform`'s columns, ``kmeans0, kmeans1, ...``, one per cluster."""
        check_is_fitted(self, "cluster_centers_")
        return self._prefixed_names(input_features, self.cluster_centers_.shape[0])

    def transform(self, X: Any) -> _np.ndarray:
        """Return the Euclidean distance of each of this rank's rows to every centre (local).

        The squared distances come from :func:`hpc.kernels.sqdist`: BLAS speed, and the digits the
        ``|x|^2 - 2x.c + |c|^2`` form cancels (rows near a centre, data far from the origin) recomputed directly.
        """
        from hpc import kernels

        X = self._rows(X)
        return _np.sqrt(kernels.sqdist(X, self.cluster_centers_.astype(X.dtype)))

    def score(self, X: Any, y: Any = None, sample_weight: Any = None, *, comm: Any = None) -> float:
        """Return minus the inertia of every rank's rows against the centres (collective), each row's squared
        distance weighted by ``sample_weight`` if given."""
        from hpc import kernels, mpi

        comm = self._comm_for(comm)
        device = _data.is_device_array(X)

        def local() -> _np.ndarray:
            """This rank's rows of ``[weighted squared distance, weight, 1]`` (weight 1 without sample_weight), or
            for device rows without weights one row of their sums (an error raised here, a failing device call
            included, is raised on every rank)."""
            if device:  # the distances on the device; only their sum crosses unless weighted
                dist = kernels.kmeans_assign(X, self._device_centres(X))[1]
                if sample_weight is None:
                    n = float(dist.shape[0])
                    return _np.array([[kernels.sum(dist), n, n]])
                dist = dist.get()
            else:
                rows = self._rows(X)
                dist = kernels.kmeans_assign(rows, self.cluster_centers_.astype(rows.dtype))[1]
            dist = dist.astype(_np.float64)
            ones = _np.ones_like(dist)
            if sample_weight is None:
                return _np.stack([dist, ones, ones], axis=1)
            weight = _data.checked_sample_weight(sample_weight, dist.shape[0])
            return _np.stack([weight * dist, weight, ones], axis=1)

        inertia, weight, rows = mpi.sum(comm, self._agreed(comm, local), reproducible=True)
        _data.refuse_no_rows(rows, self)  # on every rank alike: the totals are global
        _data.refuse_zero_weight(rows, weight)  # all weights 0
        return -float(inertia)


def _centred(blocks: Blocks, shift: _np.ndarray) -> tuple[_np.ndarray | None, _np.ndarray | None]:
    """Centre every block's rows on ``shift`` (in place of ``blocks.items``' first arrays); return host rows laid
    end to end in one array with each block's first row offset (the blocks are then views of it), or
    ``(None, None)`` for device blocks (centred block by block)."""
    if blocks.on_device:
        blocks.items = blocks.run(lambda i: (_minus(blocks.items[i][0], shift),) + blocks.items[i][1:])
        return None, None
    sizes = [item[0].shape[0] for item in blocks.items]
    offsets = _np.concatenate([[0], _np.cumsum(sizes, dtype=_np.int64)])
    d = shift.shape[0]
    rows = _np.empty((int(offsets[-1]), d), dtype=shift.dtype)

    def centre(i: int) -> tuple[_np.ndarray, ...]:
        view = rows[offsets[i] : offsets[i + 1]]
        _np.subtract(blocks.items[i][0], shift, out=view)  # the bits of X - shift
        return (view,) + blocks.items[i][1:]

    blocks.items = blocks.run(centre)
    return rows, offsets


def _minus(X: Any, shift: _np.ndarray) -> Any:
    """Return ``X - shift`` (a row of X's dtype), on the device for a DeviceArray."""
    if isinstance(X, _np.ndarray):
        return X - shift
    from hpc.cuda import twins

    return twins.subtract_row(X, shift)


def _same_clustering(comm: Any, labels1: list[_np.ndarray], labels2: list[_np.ndarray], k: int) -> bool:
    """Return whether two labelings of every rank's rows are equal up to a permutation of the labels."""
    mapping = _np.full(k + 1, -1, _np.int64)
    for a, b in zip(labels1, labels2):
        for x, y in _np.unique(_np.stack([a, b], axis=1), axis=0):
            if mapping[x] == -1:
                mapping[x] = y
            elif mapping[x] != y:
                mapping[k] = 1  # a clash on this rank
    every = comm.allgather(mapping[None, :]) if comm.size > 1 else mapping[None, :]
    if (every[:, k] == 1).any():
        return False
    for j in range(k):
        seen = set(every[:, j][every[:, j] >= 0].tolist())
        if len(seen) > 1:
            return False
    return True
