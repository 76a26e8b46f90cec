"""Random chains of adapters and terminals agree with the same chain on Python builtins, on every backend."""

from __future__ import annotations

import functools
import operator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpc import par_iter

# Each adapter: (name, how to apply it to a ParIter, how to apply it to a list). Items stay ints throughout.
ADAPTERS = {
    "map": (lambda it: it.map(lambda x: x * 3 + 1), lambda xs: [x * 3 + 1 for x in xs]),
    "filter": (lambda it: it.filter(lambda x: x % 3 != 0), lambda xs: [x for x in xs if x % 3 != 0]),
    "filter_map": (
        lambda it: it.filter_map(lambda x: x // 2 if x % 2 == 0 else None),
        lambda xs: [x // 2 for x in xs if x % 2 == 0],
    ),
    "flat_map": (
        lambda it: it.flat_map(lambda x: [x] * (x % 3)),
        lambda xs: [y for x in xs for y in [x] * (x % 3)],
    ),
    "enumerate": (
        lambda it: it.enumerate().map(lambda t: t[0] * 1000 + t[1]),
        lambda xs: [i * 1000 + x for i, x in enumerate(xs)],
    ),
    "zip": (
        lambda it: it.zip(range(7, 150)).map(lambda t: t[0] - t[1]),
        lambda xs: [a - b for a, b in zip(xs, range(7, 150))],
    ),
    "chain": (lambda it: it.chain([5, 1, 4]), lambda xs: xs + [5, 1, 4]),
    "skip": (lambda it: it.skip(3), lambda xs: xs[3:]),
    "take": (lambda it: it.take(40), lambda xs: xs[:40]),
    "step_by": (lambda it: it.step_by(3), lambda xs: xs[::3]),
    "chunks": (
        lambda it: it.chunks(4).map(sum),
        lambda xs: [sum(xs[i : i + 4]) for i in range(0, len(xs), 4)],
    ),
    "map_init": (
        lambda it: it.map_init(lambda: 10, lambda s, x: x + s),
        lambda xs: [x + 10 for x in xs],
    ),
    "min_len": (lambda it: it.with_min_len(5), lambda xs: xs),
    "max_len": (lambda it: it.with_max_len(2), lambda xs: xs),
}

odd = lambda x: x % 2 == 1  # noqa: E731
key7 = lambda x: x % 7  # noqa: E731


def _first(pred, xs):
    return next((x for x in xs if pred(x)), None)


TERMINALS = {
    "collect": (lambda it: it.collect(), list),
    "sum": (lambda it: it.sum(), sum),
    "count": (lambda it: it.count(), len),
    "min": (lambda it: it.min(), lambda xs: min(xs, default=None)),
    "max": (lambda it: it.max(), lambda xs: max(xs, default=None)),
    "reduce": (lambda it: it.reduce(0, operator.add), lambda xs: functools.reduce(operator.add, xs, 0)),
    "reduce_with": (lambda it: it.reduce_with(max), lambda xs: max(xs) if xs else None),
    "fold": (lambda it: it.fold(lambda: 0, operator.add).sum(), sum),
    "any": (lambda it: it.any(lambda x: x > 50), lambda xs: any(x > 50 for x in xs)),
    "all": (lambda it: it.all(lambda x: x > -20), lambda xs: all(x > -20 for x in xs)),
    "find_first": (lambda it: it.find_first(odd), lambda xs: _first(odd, xs)),
    "find_last": (lambda it: it.find_last(odd), lambda xs: _first(odd, xs[::-1])),
    "position_first": (
        lambda it: it.position_first(odd),
        lambda xs: next((i for i, x in enumerate(xs) if odd(x)), None),
    ),
    "partition": (
        lambda it: it.partition(odd),
        lambda xs: ([x for x in xs if odd(x)], [x for x in xs if not odd(x)]),
    ),
    "min_by_key": (lambda it: it.min_by_key(key7), lambda xs: min(xs, key=key7, default=None)),
    "max_by_key": (lambda it: it.max_by_key(key7), lambda xs: max(xs, key=key7, default=None)),
    "unzip": (lambda it: it.map(lambda x: (x, -x)).unzip(), lambda xs: (xs, [-x for x in xs])),
    "to_numpy": (lambda it: it.to_numpy().tolist(), list),
}

chains = st.lists(st.sampled_from(sorted(ADAPTERS)), max_size=4)
inputs = st.lists(st.integers(-100, 100), max_size=300)


def _check(backend, xs, chain, terminal):
    it = par_iter(xs).with_backend(backend)
    ref = list(xs)
    for name in chain:
        ours, theirs = ADAPTERS[name]
        it, ref = ours(it), theirs(ref)
    ours_t, theirs_t = TERMINALS[terminal]
    assert ours_t(it) == theirs_t(ref), (chain, terminal)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xs=inputs, chain=chains, terminal=st.sampled_from(sorted(TERMINALS)))
def test_random_chains_match_builtins_on_threads(xs, chain, terminal):
    """Any chain of adapters and any terminal on threads equals the same chain on lists and builtins."""
    _check("threads", xs, chain, terminal)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xs=inputs, chain=chains, terminal=st.sampled_from(sorted(TERMINALS)))
def test_random_chains_match_builtins_serially(xs, chain, terminal):
    """Any chain of adapters and any terminal on the serial backend equals builtins."""
    _check("serial", xs, chain, terminal)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xs=inputs, chain=chains, terminal=st.sampled_from(sorted(TERMINALS)))
def test_random_chains_match_builtins_on_processes(xs, chain, terminal):
    """Any chain of adapters and any terminal on worker processes equals builtins."""
    _check("processes", xs, chain, terminal)


@settings(max_examples=60, deadline=None)
@given(xs=inputs, chain=chains)
def test_find_any_returns_some_match(xs, chain):
    """find_any returns an item that matches (any of them), or None when nothing does."""
    it = par_iter(xs)
    ref = list(xs)
    for name in chain:
        ours, theirs = ADAPTERS[name]
        it, ref = ours(it), theirs(ref)
    found = it.with_backend("threads").find_any(odd)
    assert (found is None and not any(odd(x) for x in ref)) or (found in ref and odd(found))
