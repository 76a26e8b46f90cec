"""Audit the kernels for subnormal intermediates: the hazard that makes a kernel ~100x slower on Intel only.

Run: ``python scripts/audit_subnormals.py [--json FILE] [--only NAME ...]``; exit status 1 if any case is flagged.

An Intel core takes a microcode assist (on the order of 100 cycles) for each floating-point result in the subnormal
range, and for each subnormal operand, unless FTZ/DAZ are set (they are not, in NumPy or numba code); an AMD core
does not, so a kernel tuned on AMD can hide the hazard (the former ``nrm2`` scaled every element by ``2**-538`` and
squared it: 0.03x NumPy on a Xeon, at par on an EPYC). The hazard can be found on any x86 CPU: with the underflow
exception unmasked (``feenableexcept(FE_UNDERFLOW)``), the first result in the subnormal range raises SIGFPE. Each
case runs once to compile, then again in a forked child with the trap on; a child killed by SIGFPE marks the case.
A subnormal operand the kernel reads must have been made by the kernel first (the inputs here hold none), so
trapping the results covers both.

The cases are the kernels' serial variants (a trap is per thread: numba's worker threads would not inherit it; the
parallel variants run the same loop bodies over ranges), in float64 and float32, on the inputs real callers pass:
standard normal values, the same scaled by 1e-3 and 1e3, uniform values in [0, 1), data with a third of its entries
exactly 0, and, for the row kernels and the losses, scores of three spreads (standard normal, about +-60 as a
confident classifier's logits, about +-1000 as the margins of separable data), rows of 3000 (several blocks of the
row kernels) and edge rows (ties at the maximum, values either side of each threshold). Inputs whose true answer
is itself subnormal (or whose squares are) are out of scope: there the scaled paths are the point.

What the trap sees: a result that underflows (a subnormal, or a tiny value rounded to 0), on the calling thread
only. The parallel variants run the same row and block functions on numba's threads; BLAS calls in these cases are
small enough to stay on the calling thread. A subnormal made without arithmetic (a bit cast, a copy) is not seen.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import faulthandler
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from hpc.kernels import _checks

from hpc import info, kernels
from hpc.mpi import _binned

FE_UNDERFLOW = 0x10  # glibc's x86 value (<fenv.h>)

_libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")


def _inputs(dtype: np.dtype) -> dict[str, Callable[[tuple[int, ...], int], np.ndarray]]:
    """The input families: each takes a shape and a seed and returns an array of ``dtype``."""

    def make(scale: float, kind: str = "normal") -> Callable[[tuple[int, ...], int], np.ndarray]:
        def draw(shape: tuple[int, ...], seed: int) -> np.ndarray:
            rng = np.random.default_rng(seed)
            if kind == "uniform":
                a = rng.random(shape)
            else:
                a = rng.standard_normal(shape) * scale
                if kind == "zeros":
                    a[rng.random(shape) < 1 / 3] = 0.0
            return a.astype(dtype)

        return draw

    return {
        "normal": make(1.0),
        "normal*1e-3": make(1e-3),
        "normal*1e3": make(1e3),
        "uniform": make(1.0, "uniform"),
        "a third zeros": make(1.0, "zeros"),
    }


def _cases(dtype: np.dtype) -> list[tuple[str, str, Callable[[], Any]]]:
    """(kernel, input family, a call with the trap's inputs bound) for every kernel and family in ``dtype``."""
    cases: list[tuple[str, str, Callable[[], Any]]] = []
    families = _inputs(dtype)
    n, rows, cols, k = 4099, 67, 33, 9
    a, b = dtype.type(0.75), dtype.type(-1.25)  # the scalars of axpy, scal and axpbyc
    for family, draw in families.items():
        x, y = draw((n,), 1), draw((n,), 2)
        m, m2 = draw((rows, cols), 3), draw((k, cols), 4)
        out = np.empty_like(x)
        calls: dict[str, Callable[[], Any]] = {
            "sum": lambda x=x: kernels.sum(x, parallel=False),
            "sum accurate": lambda x=x: kernels.sum(x, accurate=True, parallel=False),
            "min": lambda x=x: kernels.min(x, parallel=False),
            "max": lambda x=x: kernels.max(x, parallel=False),
            "argmin": lambda x=x: kernels.argmin(x, parallel=False),
            "argmax": lambda x=x: kernels.argmax(x, parallel=False),
            "mean": lambda x=x: kernels.mean(x, parallel=False),
            "var": lambda x=x: kernels.var(x, parallel=False),
            "mean_var": lambda x=x: kernels.mean_var(x, parallel=False),
            "dot": lambda x=x, y=y: kernels.dot(x, y, parallel=False),
            "nrm2": lambda x=x: kernels.nrm2(x, parallel=False),
            "asum": lambda x=x: kernels.asum(x, parallel=False),
            "axpy": lambda x=x, y=y, out=out: kernels.axpy(a, x, y, out=out, parallel=False),
            "scal": lambda x=x, out=out: kernels.scal(a, x, out=out, parallel=False),
            "axpbyc": lambda x=x, y=y, out=out: kernels.axpbyc(a, x, b, y, 1.0, out=out, parallel=False),
            "fuse(x*y+1)": lambda x=x, y=y: _FMA(x, y, parallel=False),
            "inclusive_scan": lambda x=x: kernels.inclusive_scan(x, parallel=False),
            "exclusive_scan": lambda x=x: kernels.exclusive_scan(x, parallel=False),
            "histogram": lambda x=x: kernels.histogram(x, 64, parallel=False),
            "jacobi_step": lambda m=m: kernels.jacobi_step(m, parallel=False),
            "gemv": lambda m=m, v=y[:cols]: kernels.gemv(m, v, parallel=False),
            "gemm": lambda m=m, m2=m2: kernels.gemm(m, m2.T, parallel=False),
            "gemm_tiled": lambda m=m, m2=m2: kernels.gemm_tiled(m, np.ascontiguousarray(m2.T), parallel=False),
            "sqdist": lambda m=m, m2=m2: kernels.sqdist(m, m2, parallel=False),
            "kmeans_assign": lambda m=m, m2=m2: kernels.kmeans_assign(m, m2, parallel=False),
            "kmeans_step": lambda m=m, m2=m2: kernels.kmeans_step(
                m, m2.astype(np.float64), sums=np.zeros((k, cols)), counts=np.zeros(k)
            ),
            "kmeans_step_bounded": lambda m=m, m2=m2: _bounded_twice(m, m2.astype(np.float64)),
            "kmeans_distances": lambda m=m, m2=m2: kernels.kmeans_distances(
                m, m2.astype(np.float64), np.arange(m.shape[0]) % k
            ),
            "layernorm": lambda m=m: kernels.layernorm(m, parallel=False),
            "column_moments": lambda m=m: kernels.column_moments(m, deviations=True),
        }
        if not _checks.compiled_blas():  # it needs SciPy's BLAS (main() says it was left out)
            del calls["kmeans_step_bounded"]
        if dtype == np.float64:  # the reproducible sums' two lanes (float64 only): 3 ranks' terms at hand
            terms = np.stack([x, y, x[::-1].copy()])
            calls["reproducible sum (window)"] = lambda t=terms: _window_sum(t)
            calls["reproducible sum (collective)"] = lambda t=terms: _collective_sum(t)
        cases += [(name, family, call) for name, call in calls.items()]
    # scores (logits, margins) of a few spreads: standard normal; about +-60, a confident classifier's; about
    # +-1000, the margins of separable data under weak regularization (exp of those underflows even in float64);
    # rows of 3000 as well (softmax and logsumexp work in blocks of 1024: a later block's maximum rescales the
    # earlier ones); and edge rows: ties at the maximum (a sum near 2, which halves every probability) and values
    # just either side of each threshold (float32's -87.34, float64's -708, the losses' -600)
    edge = np.array([0.0, 0.0, -87.3, -87.4, -599.5, -600.5, -707.9, -708.1, -1.0, -2.0, -3.0, -4.0])
    for family, spread in {"scores": 1.0, "scores*20": 20.0, "scores*400": 400.0, "edge rows": 0.0}.items():
        rng = np.random.default_rng(5)
        if spread:
            m = (rng.standard_normal((rows, cols)) * spread).astype(dtype)
            long = (rng.standard_normal((5, 3000)) * spread).astype(dtype)
            coef = rng.standard_normal(cols) / np.sqrt(cols)  # x.coef has about the spread of x's entries
        else:
            m = np.tile(edge, (rows, 3)).astype(dtype)
            long = np.tile(edge, (5, 250)).astype(dtype)
            coef = np.zeros(m.shape[1])
            coef[0] = 1.0  # each row's margin is its first entry: 0 ... then the rows below shift it
            m[:, 0] = np.resize(edge, rows)
        labels01 = (rng.random(rows) < 0.5).astype(np.float64)
        classes = rng.integers(0, 3, rows).astype(np.float64)
        weight = np.full(rows, 0.5)  # products of the residuals with a weight as well
        coef3 = np.stack([coef, -coef, coef[::-1]])
        if not spread:  # the edge scores themselves as a multinomial's scores (W = I): ties next to each threshold
            z = np.vstack([edge.reshape(3, 4), [[0.0, 0.0, 0.0, -707.9], [0.0, 0.0, -599.9, -87.3]]]).astype(dtype)
            cases.append(("softmax_loss_grad", "edge scores", lambda z=z: kernels.softmax_loss_grad(
                z, np.zeros(len(z)), np.eye(4), None, np.full(len(z), 0.5))))
        cases += [
            ("softmax", family, lambda m=m: kernels.softmax(m, parallel=False)),
            ("softmax", family + " x3000", lambda v=long: kernels.softmax(v, parallel=False)),
            ("logsumexp", family, lambda m=m: kernels.logsumexp(m, parallel=False)),
            ("logsumexp", family + " x3000", lambda v=long: kernels.logsumexp(v, parallel=False)),
            ("logistic_loss_grad", family,
             lambda m=m, c=coef, t=labels01, w=weight: kernels.logistic_loss_grad(m, t, c, 0.0, w)),
            ("softmax_loss_grad", family,
             lambda m=m, c=coef3, t=classes, w=weight: kernels.softmax_loss_grad(m, t, c, None, w)),
        ]
    return cases


_FMA = kernels.fuse(lambda x, y: x * y + 1)


def _bounded_twice(m: np.ndarray, c: np.ndarray) -> None:
    """Two bounded k-means steps: every row computed, then the bounds widened by a small move and tested."""
    n = m.shape[0]
    state = (np.full(n, -1, np.int32), np.zeros(n), np.zeros(n))
    kernels.kmeans_step_bounded(m, c, *state)
    kernels.kmeans_step_bounded(m, c * 1.01, *state, moved=np.sqrt(((c * 0.01) ** 2).sum(axis=1)))


def _window_sum(terms: np.ndarray) -> np.ndarray:
    out = np.empty(terms.shape[1])
    _binned.sum_columns(terms, terms[0], 0, 0, terms.shape[1], out)
    return out


def _collective_sum(terms: np.ndarray) -> np.ndarray:
    m = terms.shape[1]
    fields, words = np.empty(m + 1, np.int16), np.empty(m, np.int64)
    _binned.exponents(terms, fields)
    _binned.quantize(terms, fields, words)
    _binned.to_float(words, fields, np.empty(0))
    return words.view(np.float64)


def trapped(call: Callable[[], Any]) -> str:
    """Run ``call`` once (compiling it), then in a forked child with the underflow trap on: "ok", "underflow", or
    "error" where ``call`` raises (not what is audited, and reported apart)."""
    try:
        call()
    except Exception:
        return "error"
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            faulthandler.disable()  # its SIGFPE is the verdict, not a crash to report (pytest enables faulthandler)
            _libm.feenableexcept(FE_UNDERFLOW)
            call()
            _libm.fedisableexcept(FE_UNDERFLOW)
        except BaseException:
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "underflow" if os.WTERMSIG(status) == signal.SIGFPE else f"signal {os.WTERMSIG(status)}"
    return "ok" if os.WEXITSTATUS(status) == 0 else "error"


def audit(only: list[str] | None = None) -> list[dict[str, str]]:
    """Every case's verdict: ``{"kernel", "dtype", "input", "result"}``, result "ok", "underflow" or else."""
    rows = []
    for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
        for name, family, call in _cases(dtype):
            if only and name not in only:
                continue
            rows.append({"kernel": name, "dtype": dtype.name, "input": family, "result": trapped(call)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the verdicts here")
    parser.add_argument("--only", nargs="*", help="kernel names to audit (default: all)")
    args = parser.parse_args(argv)
    rows = audit(args.only)
    cpu = info.cpu_line()
    print(f"cpu: {cpu}")
    if not _checks.compiled_blas():
        print("  not audited: kmeans_step_bounded (it needs SciPy's BLAS, which does not import here)")
    flagged = [r for r in rows if r["result"] != "ok"]
    for r in flagged:
        print(f"  {r['kernel']:<30} {r['dtype']:<8} {r['input']:<14} {r['result']}")
    print(f"{len(rows)} cases, {len(flagged)} flagged")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "cases": rows}, f, indent=1)
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
