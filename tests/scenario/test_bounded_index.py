"""Issue 11, "local state is bounded": many rounds of edits on two devices keep the
index's object cache under its bound, and what the next rounds need stays."""

from __future__ import annotations

import random
from collections.abc import Sequence

from chunksync.objects import ObjectId, ObjectKind, Tree, decode_object, id_from_hex
from chunksync.storage.index import Index
from chunksync.storage.pins import pinned
from chunksync.storage.upkeep import IndexKeeper, db_bytes
from chunksync.transport.memory import MemoryChunkStore
from chunksync.treediff import walk_tree
from tests.helpers.devices import Device, tree_of

BUDGET = 32 << 10


class CountingStore(MemoryChunkStore):
    """A memory store that counts the objects devices download."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[ObjectId] = []

    async def get_many(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        self.fetched.extend(ids)
        return await super().get_many(ids)


def cache_bytes(index: Index) -> int:
    return sum(len(v) for _k, v in index._scan("objects", b"", lambda k: False))


def load(index: Index):
    def tree(oid: ObjectId) -> Tree:
        found = index.get_object(oid)
        assert found is not None, f"tree {oid.hex()[:12]} was evicted"
        obj = decode_object(found[0], found[1])
        assert isinstance(obj, Tree)
        return obj

    return tree


def assert_base_closure_held(index: Index) -> None:
    base = id_from_hex(index.get_meta("base").decode())
    assert index.get_object(base) is not None, "the base commit was evicted"
    root = ObjectId(index.get_meta("base_root"))
    for _path, entry in walk_tree(root, load(index)):
        if entry.kind == "file" and entry.id is not None:
            assert index.get_object(entry.id) is not None, f"manifest of {_path} was evicted"


async def test_many_rounds_of_edits_keep_the_cache_bounded_and_the_base_whole(
    tmp_path, folder_keys
) -> None:
    store = CountingStore()
    a, b = (
        Device("a", tmp_path / "a", store, folder_keys),
        Device("b", tmp_path / "b", store, folder_keys),
    )
    rng = random.Random(11)
    names = [f"d{i % 4}/f{i:03}.txt" for i in range(160)]
    for name in names:
        a.write(name, f"{name} v0\n" * 3)
    await a.sync()
    await b.sync()
    keepers = {d.name: IndexKeeper(d.index, budget=BUDGET) for d in (a, b)}
    peak = {"a": 0, "b": 0}
    passes = 0
    for round_no in range(30):
        for device in (a, b):
            for name in rng.sample(names, 2):
                device.write(name, f"{name} {device.name} round {round_no}\n")
            await device.sync()
            report = keepers[device.name].after_round()
            passes += report is not None
            if report is not None:
                assert report.cached_bytes <= BUDGET
                peak[device.name] = max(peak[device.name], report.live_bytes)
    await a.sync()
    await b.sync()
    assert tree_of(a.root, mtimes=False) == tree_of(b.root, mtimes=False)  # nothing lost
    assert passes >= 4, "the cache never grew enough to be collected"
    for device in (a, b):
        keepers[device.name].collect()
        live = peak[device.name]
        # the rounds added several times the budget; what is left is the live set plus at most the budget
        assert cache_bytes(device.index) <= live + BUDGET, device.name
        entries, _ = db_bytes(device.index, "objects")
        assert entries < 600, (device.name, entries)
        assert_base_closure_held(device.index)

    # after eviction: an idle sync downloads nothing, and one edit downloads only the
    # objects of that edit (the unchanged files' manifests are all still here)
    store.fetched.clear()
    await b.sync()
    assert store.fetched == []
    a.write(names[0], "one more edit\n")
    await a.sync()
    store.fetched.clear()
    await b.sync()
    assert 1 <= len(store.fetched) <= 6, len(store.fetched)  # commit, 2 trees, manifest, chunk
    assert b.read(names[0]) == b"one more edit\n"

    # and offline: the journal diff of a local scan reads only what was kept
    b.write(names[1], "offline edit\n")
    result = b.engine().scan_local()
    on_disk = tree_of(b.root)
    assert result.files == sum(1 for d in on_disk.values() if d[0] == "file") >= len(names)
    a.close()
    b.close()


async def test_a_pinned_root_survives_eviction(memory_pair) -> None:
    a, _b, _ = memory_pair
    a.write("x/one.txt", "first version\n")
    await a.sync()
    old_root = ObjectId(a.index.get_meta("base_root"))
    a.write("x/one.txt", "second version\n")
    await a.sync()
    keeper = IndexKeeper(a.index, budget=0)
    keeper.ring = ()
    with pinned(a.index, [old_root]):
        keeper.collect()
        assert [p for p, _ in walk_tree(old_root, load(a.index))] == ["x", "x/one.txt"]
    keeper.collect()
    assert a.index.get_object(old_root) is None  # unpinned, not live, no budget: gone
    assert a.index.get_object(ObjectId(a.index.get_meta("base_root"))) is not None
    found = a.index.get_object(id_from_hex(a.index.get_meta("base").decode()))
    assert found is not None and found[0] == ObjectKind.COMMIT
