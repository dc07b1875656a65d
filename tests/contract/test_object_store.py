"""Conformance suite for the server's ObjectStore backends (restic's backend tests).

``ObjectStoreContract`` states what every backend guarantees; ``TestObjectStoreContract``
runs it against each backend through the parametrized ``store`` fixture. A new backend
joins by adding a parameter. Backend-specific behaviour is tested below the contract and,
for the pack store (persistence, pack rolling, the read-only second process, reconcile at
open), in ``test_pack_object_store.py``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync.errors import ObjectNotFound, UserError
from chunksync_server.storage import (
    Damage,
    MemoryObjectStore,
    ObjectStore,
    PackObjectStore,
    StorageError,
    StoreStats,
    open_store,
)
from tests.helpers.stores import Items, damage, make_items


@pytest.fixture(params=["memory", "pack"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    backend: ObjectStore
    if request.param == "memory":
        backend = MemoryObjectStore()
    else:
        backend = PackObjectStore(tmp_path / "objects", pack_size=64 * 1024)
    yield backend
    backend.close()


class ObjectStoreContract:
    """What every ObjectStore implementation must do; subclass to run it."""

    def test_put_then_get_returns_the_same_bytes(self, store: ObjectStore) -> None:
        items = make_items(50, seed=1)
        assert store.put_many("f1", items) == 50
        for oid, blob in items:
            assert store.get("f1", oid) == blob

    def test_empty_batch_and_empty_blob(self, store: ObjectStore) -> None:
        assert store.put_many("f1", []) == 0
        oid = b"\x01" * 32
        assert store.put_many("f1", [(oid, b"")]) == 1
        assert store.get("f1", oid) == b""

    def test_missing_id_raises_object_not_found(self, store: ObjectStore) -> None:
        store.put_many("f1", make_items(3, seed=2))
        with pytest.raises(ObjectNotFound, match=("ab" * 32)):
            store.get("f1", b"\xab" * 32)

    def test_get_many_returns_only_present_ids(self, store: ObjectStore) -> None:
        items = make_items(20, seed=3)
        store.put_many("f1", items[:10])
        got = store.get_many("f1", [oid for oid, _ in items])
        assert got == dict(items[:10])

    def test_has_many_returns_the_present_subset(self, store: ObjectStore) -> None:
        items = make_items(40, seed=4)
        store.put_many("f1", items[::2])
        assert store.has_many("f1", (oid for oid, _ in items)) == {oid for oid, _ in items[::2]}
        assert store.has_many("f1", []) == set()

    def test_list_yields_every_id_once(self, store: ObjectStore) -> None:
        items = make_items(30, seed=5)
        store.put_many("f1", items)
        listed = list(store.list("f1"))
        assert sorted(listed) == sorted(oid for oid, _ in items)
        assert list(store.list("empty")) == []

    def test_second_put_adds_nothing(self, store: ObjectStore) -> None:
        items = make_items(25, seed=6)
        assert store.put_many("f1", items) == 25
        before = store.stats("f1")
        assert store.put_many("f1", items) == 0
        assert store.stats("f1") == before == StoreStats(25, sum(len(b) for _, b in items))
        assert len(list(store.list("f1"))) == 25

    def test_duplicates_within_a_batch_count_once(self, store: ObjectStore) -> None:
        oid, blob = make_items(1, seed=7)[0]
        assert store.put_many("f1", [(oid, blob), (oid, blob)]) == 1
        assert store.stats("f1") == StoreStats(1, len(blob))

    def test_namespaces_are_isolated(self, store: ObjectStore) -> None:
        items = make_items(10, seed=8)
        store.put_many("f1", items)
        oid = items[0][0]
        assert store.has_many("f2", [oid]) == set()
        with pytest.raises(ObjectNotFound):
            store.get("f2", oid)
        assert store.put_many("f2", items[:1]) == 1
        assert store.delete_many("f2", [oid]) == 1
        assert store.get("f1", oid) == items[0][1]
        assert store.stats("f2") == StoreStats(0, 0)

    def test_delete_many_removes_and_counts(self, store: ObjectStore) -> None:
        items = make_items(10, seed=9)
        store.put_many("f1", items)
        gone = [oid for oid, _ in items[:4]]
        assert store.delete_many("f1", gone + [b"\x00" * 32]) == 4
        assert store.has_many("f1", gone) == set()
        with pytest.raises(ObjectNotFound):
            store.get("f1", gone[0])
        assert store.stats("f1").objects == 6
        assert store.put_many("f1", items[:1]) == 1  # a deleted id can be stored again
        assert store.get("f1", gone[0]) == items[0][1]
        assert store.check() == []

    def test_stats_per_namespace_and_in_total(self, store: ObjectStore) -> None:
        a, b = make_items(7, seed=10), make_items(3, seed=11)
        store.put_many("a", a)
        store.put_many("b", b)
        size_a, size_b = (sum(len(blob) for _, blob in items) for items in (a, b))
        assert store.stats("a") == StoreStats(7, size_a)
        assert store.stats() == StoreStats(10, size_a + size_b)

    def test_check_is_clean_after_writes(self, store: ObjectStore) -> None:
        store.put_many("f1", make_items(60, seed=12, max_size=8192))
        store.put_many("f2", make_items(5, seed=13))
        assert store.check() == []
        assert store.check("f1") == []

    @pytest.mark.parametrize("ns", ["", "a/b", "..", "x" * 65, "f.1"])
    def test_invalid_namespace_is_refused(self, store: ObjectStore, ns: str) -> None:
        with pytest.raises(UserError, match="namespace"):
            store.put_many(ns, make_items(1, seed=14))
        with pytest.raises(UserError):
            store.has_many(ns, [])

    def test_invalid_id_is_refused(self, store: ObjectStore) -> None:
        with pytest.raises(UserError, match="object id"):
            store.put_many("f1", [(b"short", b"blob")])
        with pytest.raises(UserError):
            store.get("f1", "ab" * 32)  # type: ignore[arg-type]

    def test_concurrent_overlapping_puts(self, store: ObjectStore) -> None:
        universe = make_items(400, seed=15, max_size=4096)
        batches = [random.Random(i).sample(universe, 60) for i in range(20)]
        start = threading.Barrier(len(batches))
        counts: list[int] = []
        errors: list[Exception] = []

        def put(batch: Items) -> None:
            try:
                start.wait()
                counts.append(store.put_many("f1", batch))
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=put, args=(b,)) for b in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        stored = {oid: blob for batch in batches for oid, blob in batch}
        assert sum(counts) == len(stored)  # each object counted new exactly once
        assert store.get_many("f1", list(stored)) == stored
        assert sorted(store.list("f1")) == sorted(stored)
        assert store.stats("f1") == StoreStats(len(stored), sum(map(len, stored.values())))
        assert store.check() == []

    def test_whatever_has_many_reports_is_readable_during_writes(self, store: ObjectStore) -> None:
        universe = make_items(300, seed=17, max_size=4096)
        expected = dict(universe)
        ids = list(expected)
        writers_done = threading.Event()
        failures: list[str] = []

        def write(part: Items) -> None:
            for start in range(0, len(part), 10):
                store.put_many("f1", part[start : start + 10])

        def read() -> None:
            while not writers_done.is_set():
                present = store.has_many("f1", ids)
                got = store.get_many("f1", list(present))
                if got != {oid: expected[oid] for oid in present}:
                    failures.append("an id reported present was missing or wrong")
                    return

        writers = [threading.Thread(target=write, args=(universe[i::3],)) for i in range(3)]
        readers = [threading.Thread(target=read) for _ in range(3)]
        for thread in readers + writers:
            thread.start()
        for thread in writers:
            thread.join()
        writers_done.set()
        for thread in readers:
            thread.join()
        assert failures == []
        assert store.has_many("f1", ids) == set(ids)

    def test_a_damaged_object_reads_as_missing(self, store: ObjectStore) -> None:
        items = make_items(6, seed=40, max_size=900)
        items = [(oid, blob or b"x") for oid, blob in items]
        store.put_many("f1", items)
        bad = items[2][0]
        damage(store, "f1", bad)
        found = store.check()
        assert len(found) == 1 and bad.hex() in found[0] and "digest mismatch" in found[0]
        with pytest.raises(ObjectNotFound):
            store.get("f1", bad)
        others = {oid: b for oid, b in items if oid != bad}
        assert store.get_many("f1", [oid for oid, _ in items]) == others
        assert bad not in store.has_many("f1", [oid for oid, _ in items])  # the client re-uploads
        assert bad not in set(store.list("f1"))
        pending = store.check()
        assert len(pending) == 1 and "waiting for a client to upload it again" in pending[0]

    def test_a_reupload_of_a_damaged_object_is_accepted_and_served(
        self, store: ObjectStore
    ) -> None:
        items = [(bytes([n]) * 32, bytes([n]) * 500) for n in range(1, 5)]
        store.put_many("f1", items)
        seen: list[Damage] = []
        store.on_damage = seen.append  # type: ignore[attr-defined]
        first, second = items[0], items[1]
        damage(store, "f1", first[0])
        damage(store, "f1", second[0])
        with pytest.raises(ObjectNotFound):
            store.get("f1", first[0])  # found by a read: quarantined, then missing
        # the second is re-uploaded before anyone read it: the damaged copy is replaced
        assert store.put_many("f1", [first, second, items[2]]) == 2
        assert store.get("f1", first[0]) == first[1]
        assert store.get("f1", second[0]) == second[1]
        assert store.has_many("f1", [first[0], second[0]]) == {first[0], second[0]}
        assert store.check() == []
        assert sorted(d.oid for d in seen) == [first[0], second[0]]  # each reported once
        assert store.put_many("f1", [first]) == 0  # intact again: put-if-absent holds

    def test_a_reupload_of_a_missing_object_is_accepted_and_served(
        self, store: ObjectStore
    ) -> None:
        items = make_items(3, seed=41)
        store.put_many("f1", items)
        assert store.delete_many("f1", [items[0][0]]) == 1
        assert store.put_many("f1", items) == 1
        assert store.get("f1", items[0][0]) == items[0][1]
        assert store.check() == []

    def test_check_repair_quarantines_damage(self, store: ObjectStore) -> None:
        items = [(bytes([n]) * 32, bytes([n]) * 300) for n in range(1, 4)]
        store.put_many("f1", items)
        damage(store, "f1", items[1][0])
        repaired = store.check(repair=True)
        assert len(repaired) == 1 and "quarantined until a client uploads it again" in repaired[0]
        assert store.has_many("f1", [oid for oid, _ in items]) == {items[0][0], items[2][0]}
        assert store.put_many("f1", items) == 1
        assert store.check() == []

    def test_closed_store_refuses_calls(self, store: ObjectStore) -> None:
        store.put_many("f1", make_items(1, seed=16))
        store.close()
        store.close()  # idempotent
        with pytest.raises(StorageError, match="closed"):
            store.stats()


class TestObjectStoreContract(ObjectStoreContract):
    """The contract, once per backend of the ``store`` fixture."""


class TestMemoryObjectStore:
    def test_check_reports_a_blob_altered_behind_its_back(self) -> None:
        store = MemoryObjectStore()
        items = make_items(3, seed=20)
        store.put_many("f1", items)
        store.corrupt("f1", items[1][0], b"tampered")
        assert store.check() == [f"f1/{items[1][0].hex()}: digest mismatch"]


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    memory = open_store("memory:")
    disk = open_store(tmp_path)
    viewer = open_store(tmp_path, read_only=True)
    try:
        assert isinstance(memory, MemoryObjectStore)
        assert isinstance(disk, PackObjectStore) and isinstance(viewer, PackObjectStore)
        assert disk.root == tmp_path / "objects" and not disk.read_only and viewer.read_only
        assert isinstance(disk, ObjectStore) and isinstance(memory, ObjectStore)
    finally:
        memory.close()
        disk.close()
        viewer.close()
