"""The index's eviction policy (storage/cache_policy.py): pure functions, table tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunksync.objects import ObjectId
from chunksync.storage.cache_policy import (
    plan_retention,
    remember,
    should_collect,
    should_compact,
)


def oid(n: int) -> ObjectId:
    return ObjectId(n.to_bytes(32, "big"))


SIZES = {oid(i): 100 for i in range(10)}


def test_live_objects_are_kept_whatever_their_size() -> None:
    plan = plan_retention(SIZES, live={oid(0), oid(1)}, recent=[], budget=0)
    assert plan.keep == {oid(0), oid(1)}
    assert plan.evict == {oid(i) for i in range(2, 10)}
    assert (plan.live_bytes, plan.cached_bytes) == (200, 0)


def test_recent_closures_are_kept_whole_newest_first_within_the_budget() -> None:
    recent = [
        (oid(2), {oid(2), oid(3), oid(0)}),  # newest; oid(0) is live: costs nothing
        (oid(4), {oid(4), oid(5)}),
        (oid(6), {oid(6)}),  # would fit, but an older generation than one that did not
    ]
    plan = plan_retention(SIZES, live={oid(0)}, recent=recent, budget=300)
    assert plan.cached_roots == (oid(2),)
    assert plan.keep == {oid(0), oid(2), oid(3)}
    assert plan.cached_bytes == 200


def test_a_closure_is_never_split() -> None:
    plan = plan_retention(
        SIZES, live=set(), recent=[(oid(1), {oid(1), oid(2), oid(3)})], budget=250
    )
    assert plan.keep == frozenset()
    assert plan.cached_roots == ()


def test_shared_objects_are_counted_once() -> None:
    recent = [(oid(1), {oid(1), oid(2)}), (oid(3), {oid(3), oid(2)})]
    plan = plan_retention(SIZES, live=set(), recent=recent, budget=300)
    assert plan.cached_roots == (oid(1), oid(3))
    assert plan.cached_bytes == 300


def test_ids_not_in_the_cache_are_ignored() -> None:
    plan = plan_retention(
        {oid(1): 5}, live={oid(1), oid(99)}, recent=[(oid(7), {oid(7)})], budget=10
    )
    assert plan.keep == {oid(1)} and plan.live_bytes == 5 and not plan.evict


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_retention(SIZES, live=set(), recent=[], budget=-1)


@given(
    live=st.sets(st.integers(0, 30)),
    recent=st.lists(st.sets(st.integers(0, 30), min_size=1), max_size=6),
    budget=st.integers(0, 4000),
)
def test_keep_and_evict_partition_the_cache_and_respect_the_budget(live, recent, budget) -> None:
    sizes = {oid(i): 10 + i for i in range(25)}
    rec = [(oid(100 + j), {oid(i) for i in c}) for j, c in enumerate(recent)]
    plan = plan_retention(sizes, {oid(i) for i in live}, rec, budget)
    assert plan.keep | plan.evict == set(sizes) and not plan.keep & plan.evict
    assert plan.cached_bytes <= budget
    assert {oid(i) for i in live} & set(sizes) <= plan.keep
    kept = dict(rec)
    for root in plan.cached_roots:  # every cached snapshot is cached whole
        assert {o for o in kept[root] if o in sizes} <= plan.keep


def test_remember_puts_new_roots_first_without_repeats_and_caps_the_ring() -> None:
    ring = remember((oid(1), oid(2)), [oid(3), oid(2), oid(3)], cap=3)
    assert ring == (oid(3), oid(2), oid(1))
    assert remember(ring, [oid(4)], cap=3) == (oid(4), oid(3), oid(2))


@pytest.mark.parametrize(
    "size, after, budget, expected",
    [
        (10, None, 100, False),  # first look, small: nothing to do
        (101, None, 100, True),  # first look, already over the budget
        (140, 100, 100, False),  # grew by less than half the budget
        (151, 100, 100, True),
    ],
)
def test_should_collect(size: int, after: int | None, budget: int, expected: bool) -> None:
    assert should_collect(size, after, budget) is expected


@pytest.mark.parametrize(
    "file_bytes, used, expected",
    [
        (1 << 30, 1 << 20, True),  # 1 GiB file, 1 MiB of data
        (100 << 20, 60 << 20, False),  # less than twice its data
        (40 << 20, 1 << 20, False),  # not worth a copy
    ],
)
def test_should_compact(file_bytes: int, used: int, expected: bool) -> None:
    assert should_compact(file_bytes, used) is expected
