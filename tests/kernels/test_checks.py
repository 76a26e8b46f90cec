"""The argument checks every kernel shares (kernels/_checks.py)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from hpc import kernels as k


@pytest.mark.parametrize(
    "call",
    [
        lambda a: k.scal(a, np.ones(3)),
        lambda a: k.axpy(a, np.ones(3), np.ones(3)),
        lambda a: k.axpbyc(a, np.ones(3), 1.0, np.ones(3)),
        lambda a: k.axpbyc(1.0, np.ones(3), a, np.ones(3)),
    ],
    ids=["scal", "axpy", "axpbyc-a", "axpbyc-b"],
)
def test_a_scalar_argument_must_be_a_real_number(call):
    """None (NumPy's float64(None) is NaN: a silent NaN result), bools and arrays with elements raise TypeError
    naming the argument; Python and NumPy numbers and 0-d arrays are taken."""
    for bad, what in ((None, "NoneType"), (True, "bool"), (np.array([2.0]), r"an array of shape \(1,\)"), ("2", "str")):
        with pytest.raises(TypeError, match=f"must be a real number; got {what}"):
            call(bad)
    for good in (2, 2.0, np.float32(2.0), np.int64(2), np.array(2.0)):
        assert np.isfinite(call(good)).all()


def test_automatic_choice_is_serial_where_numba_gives_the_thread_one_thread():
    """parallel=None takes the serial variant off the main thread when numba's count there is 1 (as in a worker
    of hpc's pool): a team of one is overhead, and numba's workqueue layer aborts when parallel kernels are entered
    from several threads at once."""
    import threading

    import numba
    from hpc.kernels import _checks

    from hpc import config

    big = _checks.PARALLEL_MIN_ELEMENTS
    seen = {}

    def worker(threads):
        numba.set_num_threads(threads)
        seen[threads] = _checks.use_parallel(None, big)

    for threads in {1, numba.config.NUMBA_NUM_THREADS}:
        t = threading.Thread(target=worker, args=(threads,))
        t.start()
        t.join()
    assert seen[1] is False
    assert seen[numba.config.NUMBA_NUM_THREADS] is (numba.config.NUMBA_NUM_THREADS > 1 and config.num_threads() > 1)
    assert _checks.use_parallel(None, big - 1) is False and _checks.use_parallel(True, 1) is True


@pytest.mark.timeout(120)
def test_kernels_in_pool_workers_do_not_abort_numbas_workqueue_layer(run_script):
    """Under NUMBA_THREADING_LAYER=workqueue, a parallel kernel on the main thread and then kernels in the pool's
    workers aborted the process ("Concurrent access has been detected"); the workers now run them serially."""
    out = run_script(
        "import numpy as np\n"
        "from hpc import kernels, par_iter\n"
        "x = np.ones(1 << 18)\n"
        "kernels.sum(x)  # parallel, chosen by size, on the main thread\n"
        "print(sum(par_iter([x] * 16).with_max_len(1).map(kernels.sum).collect()))\n",
        NUMBA_THREADING_LAYER="workqueue",
    )
    assert out.split()[-1] == str(16.0 * (1 << 18))


@pytest.mark.timeout(120)
def test_kernels_from_several_user_threads_do_not_abort_numbas_workqueue_layer(run_script):
    """Under NUMBA_THREADING_LAYER=workqueue, kernels with parallel=None called from two user threads (a fitted
    model's predict in a server's threads) aborted the process; threads other than the main one now run them
    serially, and the main thread keeps its parallel variants."""
    out = run_script(
        "import threading, numpy as np\n"
        "from hpc import kernels\n"
        "from hpc.kernels import _checks\n"
        "x = np.ones(1 << 18)\n"
        "def calls():\n"
        "    for _ in range(100):\n"
        "        assert kernels.sum(x) == x.size and kernels.dot(x, x) == x.size\n"
        "threads = [threading.Thread(target=calls) for _ in range(2)]\n"
        "[t.start() for t in threads]\n"
        "calls()\n"
        "[t.join() for t in threads]\n"
        "print(_checks.use_parallel(None, x.size), 'survived')\n",
        NUMBA_THREADING_LAYER="workqueue", HPC_NUM_THREADS="2", NUMBA_NUM_THREADS="2",
    )
    assert out.split()[-2:] == ["True", "survived"]


@pytest.mark.timeout(120)
def test_a_child_forked_after_gnu_openmp_started_runs_serial_variants_or_says_why_not(run_script):
    """numba ends (SIGTERM) a parallel kernel in a child forked from a process whose numba threads run on GNU
    OpenMP (a fork Pool's worker hung): there parallel=None takes the serial variant, parallel=True is a clear
    RuntimeError."""
    out = run_script(
        "import os, sys, numpy as np\n"
        "import numba.np.ufunc.parallel as layer\n"
        "from hpc import kernels\n"
        "x = np.ones(1 << 20)\n"
        "kernels.sum(x, parallel=True)  # starts numba's threads in the parent\n"
        "vendor = getattr(sys.modules.get('numba.np.ufunc.omppool'), 'openmp_vendor', None)\n"
        "if layer._threading_layer != 'omp' or vendor != 'GNU':\n"
        "    print('not GNU OpenMP'); sys.exit(0)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    try:\n"
        "        kernels.sum(x, parallel=True)\n"
        "        os._exit(3)\n"
        "    except RuntimeError as exc:\n"
        "        os._exit(4 if 'forked' in str(exc) and kernels.sum(x) == x.size else 5)\n"
        "print('child', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n",
        NUMBA_THREADING_LAYER="omp",
    )
    if "not GNU OpenMP" in out:
        pytest.skip("numba's OpenMP layer is not GNU OpenMP here")
    assert out.split()[-2:] == ["child", "4"]


@pytest.mark.timeout(180)
def test_a_child_forked_beside_a_started_gnu_openmp_runs_serial_variants_or_says_why_not(run_script, tmp_path):
    """torch runs its ops on its own libgomp.so.1, the library numba's OpenMP layer then binds to: a child forked
    after one torch op (a DataLoader worker, a fork Pool) hung forever in its first parallel kernel, numba's layer
    never having started in the parent. A C library's OpenMP region stands in for the torch op here."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build an OpenMP library")
    source = tmp_path / "team.c"
    source.write_text("int team(void) { int n = 0;\n#pragma omp parallel reduction(+:n)\n n += 1;\n return n; }\n")
    library = tmp_path / "libteam.so"
    subprocess.run(["gcc", "-fopenmp", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    out = run_script(
        "import ctypes, os, signal, sys, time, numpy as np\n"
        "import numba.np.ufunc.parallel as layer\n"
        "from hpc import kernels\n"
        f"print('team of', ctypes.CDLL({str(library)!r}).team())  # GNU OpenMP's threads start, numba's do not\n"
        "assert not layer._is_initialized\n"
        "x = np.ones(1 << 20)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    total = kernels.sum(x)  # parallel=None: the parallel variant waited forever\n"
        "    try:\n"
        "        kernels.sum(x, parallel=True)\n"
        "        os._exit(3)\n"
        "    except RuntimeError as exc:\n"
        "        os._exit(4 if 'libgomp' in str(exc) and total == x.size else 5)\n"
        "deadline = time.monotonic() + 60\n"
        "while True:\n"
        "    done, status = os.waitpid(pid, os.WNOHANG)\n"
        "    if done:\n"
        "        break\n"
        "    if time.monotonic() > deadline:\n"
        "        os.kill(pid, signal.SIGKILL); print('child hung'); sys.exit(0)\n"
        "    time.sleep(0.05)\n"
        "print('child', os.waitstatus_to_exitcode(status))\n",
        timeout=150, NUMBA_THREADING_LAYER="omp", HPC_NUM_THREADS="2", NUMBA_NUM_THREADS="2", OMP_NUM_THREADS="2",
    )
    assert "team of 2" in out
    assert out.split()[-2:] == ["child", "4"], out


def test_ndarray_subclasses_take_their_plain_memory_and_masks_are_refused():
    """A numpy.matrix (as input or out=) is used as the plain array over its memory: its reshape(-1) stays 2-D, and
    loops that took it as given wrote rows past the buffer (wrong values, then a corrupted heap) or failed to type;
    a memmap works as any array; a masked array raises TypeError naming the argument (its mask would be ignored)."""
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = np.matrix(np.zeros((2, 2)))
    k.inclusive_scan(a, out=out)
    np.testing.assert_array_equal(np.asarray(out), [[1.0, 3.0], [6.0, 10.0]])
    y = np.matrix([[10.0, 20.0], [30.0, 40.0]])
    k.axpy(1.0, a, y)
    np.testing.assert_array_equal(np.asarray(y), [[11.0, 22.0], [33.0, 44.0]])
    for call, want in ((lambda o: k.scal(2.0, a, out=o), 2 * a),
                       (lambda o: k.axpbyc(1.0, a, 1.0, a, 1.0, out=o), 2 * a + 1),
                       (lambda o: k.fuse(lambda u, v: u * v + 1.0)(a, a, out=o), a * a + 1)):
        out = np.matrix(np.zeros((2, 2)))
        call(out)
        np.testing.assert_array_equal(np.asarray(out), want)
    big = np.matrix(np.zeros((300, 300)))
    k.inclusive_scan(np.ones((300, 300)), out=big)
    assert big[-1, -1] == 90000.0
    assert k.sum(np.matrix([[1.0, 2.0]])) == 3.0 and k.dot(np.matrix([[1.0, 2.0]]), np.matrix([[1.0, 2.0]])) == 5.0
    masked = np.ma.masked_array([[1.0, 2.0]], mask=[[0, 1]])
    for call, name in ((lambda: k.sum(masked), "x"), (lambda: k.gemm(masked, np.ones((2, 1))), "a"),
                       (lambda: k.softmax(masked), "x")):
        with pytest.raises(TypeError, match=f"{name} is a masked array"):
            call()


def test_a_scalar_or_a_device_array_is_named_with_the_way_out():
    """"got float64" read as if a float64 array had been refused; a DeviceArray given to a kernel without a GPU
    twin was named without saying so."""
    from hpc import cuda, kernels

    with pytest.raises(TypeError, match=r"got a numpy.float64 scalar \(pass numpy.asarray\(x\)\)"):
        kernels.sum(np.float64(3.0))
    assert kernels.sum(np.asarray(np.float64(3.0))) == 3.0
    with pytest.raises(TypeError, match=r"DeviceArray; this kernel has no GPU twin .*: pass x.get\(\)"):
        kernels.var(cuda.to_device(np.ones(3)))


@pytest.mark.timeout(180)
def test_a_scipy_that_fails_to_import_is_no_compiled_blas(tmp_path, run_script):
    """An installed SciPy that fails on import (one built against another NumPy) was taken for a working one: the
    GEMM-form kernels called BLAS from compiled code, and numba's BLAS wrapper ended the process ("Fatal Python
    error: BLAS wrapper returned with an error"). They take NumPy's products there, with the same answers, and a
    k-means fit runs."""
    import os

    broken = tmp_path / "site" / "scipy"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("built against another NumPy (a test stand-in)")\n')
    out = run_script(
        "import numpy as np\n"
        "from hpc import kernels\n"
        "from hpc.kernels import _checks\n"
        "from hpc.ml import KMeans\n"
        "x = np.random.default_rng(0).standard_normal((600, 32))\n"
        "c = x[:64].copy()\n"
        "d = kernels.sqdist(x, c, parallel=True)\n"
        "labels, dist = kernels.kmeans_assign(x, c, parallel=True)\n"
        "ref = ((x[:, None, :] - c[None]) ** 2).sum(-1)\n"
        "assert np.allclose(d, ref, rtol=1e-12, atol=1e-12)\n"
        "assert (labels == ref.argmin(1)).all()\n"
        "KMeans(8, n_init=1, random_state=0).fit(x)\n"
        "print('compiled_blas', _checks.compiled_blas())\n",
        timeout=170,
        PYTHONPATH=os.pathsep.join(filter(None, [str(broken.parent), os.environ.get("PYTHONPATH")])),
    )
    assert out.split()[-2:] == ["compiled_blas", "False"]


def test_compiled_blas_where_scipy_works():
    """With a working SciPy (the dev install) compiled kernels call BLAS."""
    from hpc.kernels import _checks

    pytest.importorskip("scipy.linalg.cython_blas")
    assert _checks.compiled_blas() is True


def test_parallel_none_follows_numbas_thread_count_on_the_main_thread_too():
    """numba.set_num_threads(1) (or NUMBA_NUM_THREADS=1) on the main thread still chose the parallel variant: a
    team of one, and the parallel variant's bits where docs/kernels.md says the serial one runs."""
    import numba
    from hpc.kernels import _checks

    big = _checks.PARALLEL_MIN_ELEMENTS
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert _checks.use_parallel(None, big) is False
    finally:
        numba.set_num_threads(before)
    assert _checks.use_parallel(None, big) is (before > 1 and _checks._config.num_threads() > 1)


def test_scalar_arguments_take_any_real_and_refuse_what_the_dtype_cannot_hold():
    """A Fraction (a numbers.Real) was refused; for float32 data 10**40 became inf with a warning where 2**1024
    raised: any finite value beyond the dtype raises OverflowError naming the argument; inf itself is taken."""
    from fractions import Fraction

    x = np.ones(3, np.float32)
    assert k.scal(Fraction(1, 2), x.copy()).tolist() == [0.5] * 3
    for big in (10**40, 1e39, np.float64(1e39), 2**1024):
        with pytest.raises(OverflowError, match="a is too large for float32"):
            k.scal(big, x.copy())
    assert np.isinf(k.scal(float("inf"), x.copy())).all()
    assert k.scal(10**40, np.ones(2)).tolist() == [1e40, 1e40]
