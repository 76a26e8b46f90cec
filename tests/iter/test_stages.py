"""hpc.iter.stages: one class per adapter concept; the one-to-one ones keep positions on an indexed node."""

from __future__ import annotations

import pytest

from hpc import par_iter
from hpc.iter import indexed, stages


def _plan(it):
    return it._plan()


def test_one_to_one_stages_on_a_source_become_indexed_nodes():
    """map, map_init and inspect on a source wrap it in OneToOne (positions known: no stage appended)."""
    for it in (par_iter([1, 2, 3]).map(str), par_iter([1, 2]).map_init(list, lambda s, x: x),
               par_iter([1]).inspect(print)):
        plan = _plan(it)
        assert isinstance(plan.node, indexed.OneToOne) and plan.stages == ()
        assert plan.node.stage.one_to_one


def test_after_a_filter_every_adapter_is_a_stage():
    """After a stage that drops or adds items, map is appended as a stage of the same Map class."""
    plan = _plan(par_iter(range(10)).filter(lambda x: x % 2).map(str).flat_map(list))
    assert [type(s) for s in plan.stages] == [stages.Filter, stages.Map, stages.FlatMap]
    assert not isinstance(plan.node, indexed.OneToOne)


def test_positional_adapters_after_a_map_see_the_same_items():
    """enumerate, skip and take after map: the same answer as on a list (positions were kept, nothing collected)."""
    got = par_iter(list(range(10))).map(lambda x: x * x).enumerate().skip(2).take(3).collect()
    assert got == [(2, 4), (3, 9), (4, 16)]


def test_one_to_one_refuses_a_stage_that_does_not_keep_positions():
    with pytest.raises(ValueError, match="does not keep positions"):
        indexed.OneToOne(indexed.RangeSource(range(3)), stages.Filter(bool))


@pytest.mark.parametrize("backend", ["serial", "threads"])
def test_fold_takes_a_value_or_a_callable_identity(backend):
    """fold's identity may be a value, as reduce's may; a callable makes a fresh accumulator per chunk, so a list
    accumulator updated in place is never shared between chunks."""
    items = par_iter(range(1000)).with_backend(backend)
    assert items.fold(0, lambda acc, x: acc + x).sum() == 499500
    assert items.fold(lambda: 0, lambda acc, x: acc + x).sum() == 499500
    lists = items.fold(list, lambda acc, x: acc.append(x) or acc).collect()
    assert len(lists) > 1 and sorted(x for chunk in lists for x in chunk) == list(range(1000))
    assert len({id(chunk) for chunk in lists}) == len(lists)  # one fresh list per chunk
