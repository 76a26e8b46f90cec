"""Terminals give the builtins' answers for any chunking, unordered values (NaN, NaT) included."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hpc import par_iter

NAN = float("nan")


@pytest.mark.parametrize("backend", ["serial", "threads"])
def test_min_and_max_by_key_with_unordered_keys_are_the_builtins(backend):
    """A NaN key is never better and is never beaten when it comes first, whatever chunk it starts: the answer is
    builtins.min/max's for every chunk length (a NaN starting a chunk used to hide the rest of that chunk)."""
    keys = [5.0] * 4 + [NAN, 1.0, 2.0, 3.0]
    items = range(len(keys))
    assert par_iter(items).with_backend(backend).with_max_len(4).min_by_key(keys.__getitem__) == 5
    rng = random.Random(0)
    for _ in range(100):
        n = rng.randint(1, 30)
        keys = [rng.choice([NAN, rng.randint(0, 9), rng.random()]) for _ in range(n)]
        items = list(range(n))
        for chunk in (1, 2, 3, 7, 30):
            run = par_iter(items).with_backend(backend).with_max_len(chunk)
            assert run.min_by_key(keys.__getitem__) == min(items, key=keys.__getitem__)
            assert run.max_by_key(keys.__getitem__) == max(items, key=keys.__getitem__)


def test_min_and_max_of_datetimes_pass_over_nat_as_the_builtins():
    days = np.array(["2020-01-05", "NaT", "2020-01-01", "2020-01-03"], dtype="datetime64[D]")
    assert par_iter(days).min() == min(list(days)) == np.datetime64("2020-01-01")
    assert par_iter(days).max() == max(list(days)) == np.datetime64("2020-01-05")


def test_min_and_max_of_object_arrays_with_nan_are_the_builtins(backend):
    """An object array goes item by item, as a list does: NumPy's min/max of one handle NaN otherwise than the
    builtins (np.max of [2.0, 1.0, nan, 5.0] as objects is 2.0, builtins.max 5.0)."""
    cases = [
        [2.0, 1.0, NAN, 5.0],
        [NAN, 1.0, 7.0, 3.0],
        [4, 2.5, NAN, NAN, 9, -1.0],
        [NAN, NAN],
    ]
    for values in cases:
        a = np.array(values, dtype=object)
        for chunk in (1, 2, 3, len(values)):
            run = par_iter(a).with_backend(backend).with_max_len(chunk)
            for ours, builtin in ((run.min(), min(a)), (run.max(), max(a))):
                assert ours == builtin or (ours != ours and builtin != builtin), (values, chunk, ours, builtin)


@pytest.mark.parametrize("backend", ["serial", "threads", "processes"])
def test_min_and_max_compare_none_as_the_builtins_do(backend):
    """A chunk of None items folded to "no value": min([3, None, 1]) gave 1 (the builtins raise TypeError), and
    par_iter([None, None]).min() gave None as if empty."""
    for items in ([3, None, 1], [None, 2], [None, None]):
        for terminal in ("min", "max"):
            with pytest.raises(TypeError, match="not supported between"):
                getattr(par_iter(items).with_backend(backend), terminal)()
    assert par_iter([None]).with_backend(backend).min() is None  # one item: nothing to compare, as min([None])


def test_sum_and_product_of_small_numpy_ints_widen_through_any_chain():
    """A plain array chunk summed as np.sum (uint8 to uint64); an identity map, a chain or a filter before sum
    summed NumPy scalars with the builtin, which wraps in uint8: 64 instead of 200000."""
    img = np.full(1000, 200, np.uint8)
    want = np.sum(img)
    for it in (par_iter(img), par_iter(img).map(lambda p: p), par_iter(img).chain(img[:0]),
               par_iter(img).filter(bool), par_iter(list(img))):
        got = it.sum()
        assert got == want == 200000 and got.dtype == np.uint64
    small = np.full(10, 3, np.int8)
    assert par_iter(small).map(lambda v: v).product() == np.prod(small) == 59049
    assert par_iter(np.ones(5, bool)).map(lambda b: b).sum() == 5
    mixed = [0] + [np.uint8(200)] * 7  # a chunk may begin with the Python int: the same answer on every chunking
    assert {int(par_iter(mixed).with_min_len(n).with_max_len(n).sum()) for n in (1, 2, 4, 8)} == {1400}
