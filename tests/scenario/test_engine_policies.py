"""Per-pattern conflict policies, end to end through the engine."""

from __future__ import annotations

import os

import pytest

from chunksync.conflict import ConflictPolicies
from chunksync.history import find_snapshot, list_snapshots, restore
from chunksync.sync.objects_io import ObjectReader
from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.devices import Device, tree_of


@pytest.fixture
def pair(tmp_path, folder_keys):
    store = MemoryChunkStore()
    policies = ConflictPolicies(rules=(("*.log", "last-write-wins"), ("*.todo", "manual")))
    a = Device("a", tmp_path / "a", store, folder_keys, policies=policies)
    b = Device("b", tmp_path / "b", store, folder_keys, policies=policies)
    yield a, b
    a.close()
    b.close()


def _set_mtime(path, seconds: int) -> None:
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


async def test_last_write_wins_keeps_the_loser_in_history(pair, tmp_path):
    a, b = pair
    a.write("app.log", "start")
    await a.sync()
    await b.sync()
    _set_mtime(a.write("app.log", "newer, from a"), 2_000_000_000)
    _set_mtime(b.write("app.log", "older, from b"), 1_900_000_000)
    await a.sync()
    result = await b.sync()
    assert [c.policy for c in result.conflicts] == ["last-write-wins"]
    assert b.read("app.log") == b"newer, from a"
    assert not [p for p in tree_of(b.root) if "conflicted copy" in p]
    record = dict(b.index.iter_conflicts())["app.log"]
    assert record["snapshot"]
    # the loser is still restorable from history
    reader = ObjectReader(b.keys, b.index, b.store)
    snap = await find_snapshot(reader, await list_snapshots(reader), record["snapshot"], None)
    out = tmp_path / "lost"
    await restore(reader, snap, ["app.log"], out)
    assert (out / "app.log").read_text() == "older, from b"
    await a.sync()
    assert tree_of(a.root) == tree_of(b.root)


async def test_manual_policy_keeps_both_and_flags_until_resolved(pair):
    a, b = pair
    a.write("list.todo", "base")
    await a.sync()
    await b.sync()
    a.write("list.todo", "a's list")
    b.write("list.todo", "b's list")
    await a.sync()
    result = await b.sync()
    assert [c.policy for c in result.conflicts] == ["manual"]
    records = dict(b.index.iter_conflicts())
    assert records["list.todo"]["policy"] == "manual"
    copy = records["list.todo"]["copy_path"]
    assert b.read(copy) == b"b's list" and b.read("list.todo") == b"a's list"
