"""User code as the docs write it, for tests/test_typing.py: it runs (so it is correct) and mypy checks it.

A ``# reveal:`` comment gives what mypy must reveal on that line (a substring); a ``# error:`` comment, the error
code mypy must report there (misuse the checker should catch, in functions never called). No other line may have
an error: each would be a false alarm on working code.
"""

from __future__ import annotations

import warnings
from typing import reveal_type

import numpy as np

import hpc
from hpc import ThreadPool, cuda, kernels, ml, mpi, par_iter, par_range, scope


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def count(acc: dict[str, int], word: str) -> dict[str, int]:
    acc[word] = acc.get(word, 0) + 1
    return acc


def push(acc: list[int], x: int) -> list[int]:
    acc.append(x)
    return acc


# parallel iterators: the element type through adapters and terminals
words = ["a", "b", "a"]
numbers = [1, 2, 3]
reveal_type(par_iter(numbers).map(str).collect())  # reveal: list[str]
reveal_type(par_iter(par_range(3)))  # reveal: hpc.iter.par_iter.ParIter[int]
reveal_type(par_iter(words).fold(dict, count))  # reveal: ParIter[dict[str, int]]
reveal_type(par_range(5).fold(list, push))  # reveal: ParIter[list[int]]
reveal_type(par_range(100).fold(0, lambda acc, x: acc + x))  # reveal: ParIter[int]
reveal_type(par_iter(numbers).zip(words).collect())  # reveal: list[tuple[int, str]]
reveal_type(par_iter(numbers).chain(words).collect())  # reveal: list[int | str]
reveal_type(par_iter(numbers).to_numpy())  # reveal: numpy.ndarray
with ThreadPool(2) as pool:
    reveal_type(pool.submit(fib, 10))  # reveal: concurrent.futures._base.Future[int]
with scope() as s:
    s.spawn(fib, 10)


def misuse_of_the_pool(pool: ThreadPool) -> None:
    pool.submit(fib, "ten")  # error: arg-type


def misuse_of_the_scope() -> None:
    with scope() as s:
        s.spawn(fib, "ten")  # error: arg-type


# kernels: NumPy scalars for reductions, arrays of the input's kind, NumPy scalars as arguments
x = np.linspace(0.0, 1.0, 8)
y = np.ones(8)
reveal_type(kernels.dot(x, y))  # reveal: numpy.floating[Any]
reveal_type(kernels.sum(x, accurate=True))  # reveal: numpy.floating[Any]
reveal_type(kernels.axpy(np.float32(2.0), x, y))  # reveal: numpy.ndarray
reveal_type(kernels.kmeans_assign(x.reshape(4, 2), x[:4].reshape(2, 2)))  # reveal: tuple[numpy.ndarray
reveal_type(kernels.mean_var(x))  # reveal: tuple[numpy.floating[Any], numpy.floating[Any]]
reveal_type(kernels.argmax(x))  # reveal: int
reveal_type(hpc.kernels.nrm2(x))  # reveal: numpy.floating[Any]
reveal_type(kernels.var(x, ddof=np.int64(1)))  # reveal: numpy.floating[Any]
reveal_type(kernels.histogram(x, bins=np.int64(3), range=[0, 2])[0])  # reveal: numpy.ndarray
reveal_type(kernels.column_moments(x.reshape(4, 2)))  # reveal: tuple[numpy.ndarray[
reveal_type(kernels.sqdist(x.reshape(4, 2), x.reshape(4, 2), block_rows=np.int64(2)))  # reveal: numpy.ndarray

# mpi (one process, no launcher): the lazy submodule, futures, fused blocks, the result type
comm = hpc.mpi.world()
reveal_type(comm)  # reveal: hpc.mpi.comm.Comm
reveal_type(comm.iallreduce(1.0))  # reveal: hpc.mpi.collectives.CollectiveFuture
with comm.fused() as block:
    total = block.allreduce(1.0)


def keep(result: mpi.FusedResult) -> float:
    return float(result.value)


# cuda: a NumPy int names a device, as an int does (the CPU fallback here)
reveal_type(cuda.Device(np.int64(0)))  # reveal: hpc.cuda.device.Device

# ml: chained setters keep the estimator's class; scikit-learn's exception classes
X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
km = ml.KMeans(n_clusters=3).set_params(n_clusters=2, random_state=0).fit(X)
reveal_type(km)  # reveal: hpc.ml.kmeans.KMeans
scaled = ml.StandardScaler().set_output(transform="default").fit_transform(X)
try:
    ml.PCA(n_components=1).transform(X)
except ml.NotFittedError:
    pass
warnings.simplefilter("ignore", ml.ConvergenceWarning)
print("ran to the end", keep(total), scaled.shape)
