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
