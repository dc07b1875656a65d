"""Conformance suite for the server's ObjectStore backends (restic's backend tests).

``ObjectStoreContract`` states what every backend guarantees; ``TestObjectStoreContract``
runs it against each backend through the parametrized ``store`` fixture. A new backend
joins by adding a parameter. Backend-specific behaviour (persistence, pack rolling,
the read-only second process) is tested below the contract.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync.errors import ObjectNotFound, UserError
from server.storage import (
    Damage,
    MemoryObjectStore,
    ObjectStore,
    PackObjectStore,
    StorageError,
    StoreStats,
    open_store,
)
from server.storage import packfiles as packfiles_module
from server.storage.packindex import INDEX_FILE

Items = list[tuple[bytes, bytes]]


def make_items(count: int, seed: int, max_size: int = 2048) -> Items:
    """Deterministic (id, blob) pairs with random-looking ids and sizes 0..max_size."""
    rng = random.Random(seed)
    return [(rng.randbytes(32), rng.randbytes(rng.randint(0, max_size))) for _ in range(count)]


def damage(store: ObjectStore, ns: str, oid: bytes) -> None:
    """Flip one bit of a stored blob behind the store's back (bit rot, a bad disk)."""
    if isinstance(store, MemoryObjectStore):
        good = store.get(ns, oid)
        store.corrupt(ns, oid, bytes([good[0] ^ 1]) + good[1:])
        return
    assert isinstance(store, PackObjectStore)
    with sqlite3.connect(store.root / INDEX_FILE) as db:
        pack, offset = db.execute(
            "SELECT pack, offset FROM objects WHERE ns = ? AND oid = ?", (ns, oid)
        ).fetchone()
    db.close()
    with open(store.root / ns / "packs" / f"{pack}.pack", "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))


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
            except Exception as exc:  # noqa: BLE001 - reported below, in the test thread
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
        bad, blob = items[2]
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


class TestPackObjectStore:
    def test_objects_survive_reopening(self, tmp_path: Path) -> None:
        items = make_items(40, seed=21)
        with_store = PackObjectStore(tmp_path / "objects")
        with_store.put_many("f1", items)
        with_store.close()
        reopened = PackObjectStore(tmp_path / "objects")
        try:
            assert reopened.get_many("f1", [oid for oid, _ in items]) == dict(items)
            assert reopened.put_many("f1", items) == 0
            assert reopened.check() == []
        finally:
            reopened.close()

    def test_packs_roll_at_the_size_limit(self, tmp_path: Path) -> None:
        store = PackObjectStore(tmp_path / "objects", pack_size=10_000)
        try:
            items = make_items(40, seed=22, max_size=3000)
            for start in range(0, 40, 4):
                store.put_many("f1", items[start : start + 4])
            packs = sorted((tmp_path / "objects" / "f1" / "packs").glob("*.pack"))
            assert len(packs) > 3
            assert all(p.stat().st_size <= 10_000 + 4 * 3000 for p in packs)
            assert store.get_many("f1", [oid for oid, _ in items]) == dict(items)
            assert store.check() == []
        finally:
            store.close()

    def test_reads_beyond_the_descriptor_cache(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(packfiles_module, "MAX_CACHED_FDS", 1)
        store = PackObjectStore(tmp_path / "objects", pack_size=4096)
        try:
            items = make_items(12, seed=28, max_size=3000)
            for oid, blob in items:
                store.put_many("f1", [(oid, blob)])
            reader = PackObjectStore(tmp_path / "objects")  # opens packs only to read
            try:
                assert reader.get_many("f1", [oid for oid, _ in items]) == dict(items)
                assert reader.check() == []
            finally:
                reader.close()
        finally:
            store.close()

    def test_a_second_opener_is_a_read_only_view(self, tmp_path: Path) -> None:
        writer = PackObjectStore(tmp_path / "objects")
        reader = PackObjectStore(tmp_path / "objects")
        try:
            assert not writer.read_only and reader.read_only
            items = make_items(10, seed=23)
            writer.put_many("f1", items)
            assert reader.get_many("f1", [oid for oid, _ in items]) == dict(items)
            assert reader.has_many("f1", [items[0][0], b"\x00" * 32]) == {items[0][0]}
            assert reader.stats("f1").objects == 10
            assert reader.check() == []
            with pytest.raises(StorageError, match="read-only"):
                reader.put_many("f1", make_items(1, seed=24))
            with pytest.raises(StorageError, match="read-only"):
                reader.delete_many("f1", [items[0][0]])
        finally:
            reader.close()
            writer.close()

    def test_the_reader_takes_over_once_the_writer_has_gone(self, tmp_path: Path) -> None:
        first = PackObjectStore(tmp_path / "objects")
        second = PackObjectStore(tmp_path / "objects")
        items = make_items(6, seed=29)
        first.put_many("f1", items[:3])
        first.close()
        pack = tmp_path / "objects" / "f1" / "packs" / "0.pack"
        size = pack.stat().st_size
        with open(pack, "ab") as tail:  # as if the writer had died mid-append
            tail.write(b"partial")
        try:
            assert second.read_only
            assert second.put_many("f1", items) == 3
            assert not second.read_only
            assert pack.stat().st_size == size + sum(len(b) for _, b in items[3:])
            assert second.get_many("f1", [oid for oid, _ in items]) == dict(items)
            assert second.check() == []
        finally:
            second.close()

    def test_read_only_opening_never_takes_the_writer_lock(self, tmp_path: Path) -> None:
        with pytest.raises(StorageError, match="no object store"):
            PackObjectStore(tmp_path / "objects", read_only=True)
        PackObjectStore(tmp_path / "objects").close()
        viewer = PackObjectStore(tmp_path / "objects", read_only=True)
        writer = PackObjectStore(tmp_path / "objects")
        try:
            assert viewer.read_only and not writer.read_only
            items = make_items(4, seed=30)
            writer.put_many("f1", items)
            assert viewer.has_many("f1", [oid for oid, _ in items]) == {o for o, _ in items}
            writer.close()
            with pytest.raises(StorageError, match="opened read-only"):
                viewer.put_many("f1", make_items(1, seed=31))
        finally:
            viewer.close()
            writer.close()

    def test_has_many_answers_100k_ids_quickly(self, tmp_path: Path) -> None:
        store = PackObjectStore(tmp_path / "objects")
        try:
            items = make_items(2000, seed=25, max_size=16)
            store.put_many("f1", items)
            rng = random.Random(26)
            query = [oid for oid, _ in items] + [rng.randbytes(32) for _ in range(98_000)]
            began = time.perf_counter()
            found = store.has_many("f1", query)
            elapsed = time.perf_counter() - began
            assert found == {oid for oid, _ in items}
            assert elapsed < 0.5, f"has_many took {elapsed:.3f}s for 100k ids"  # loaded CI
        finally:
            store.close()

    def test_a_pack_shortened_while_closed_loses_only_its_tail_objects(
        self, tmp_path: Path
    ) -> None:
        items = [(bytes([n]) * 32, bytes([n]) * 1000) for n in range(1, 6)]
        store = PackObjectStore(tmp_path / "objects")
        store.put_many("f1", items)
        store.close()
        pack = tmp_path / "objects" / "f1" / "packs" / "0.pack"
        with open(pack, "r+b") as f:
            f.truncate(2500)  # objects 3 to 5 lost; object 3 cut in the middle
        seen: list[Damage] = []
        store = PackObjectStore(tmp_path / "objects", on_damage=seen.append)
        try:
            assert sorted(d.oid for d in seen) == [oid for oid, _ in items[2:]]
            assert pack.stat().st_size == 2000  # cut back to the last intact object
            assert store.has_many("f1", [oid for oid, _ in items]) == {items[0][0], items[1][0]}
            fresh = (b"\x09" * 32, b"\x09" * 700)
            assert store.put_many("f1", [fresh, *items]) == 4
            assert store.get_many("f1", [oid for oid, _ in items]) == dict(items)
            assert store.get("f1", fresh[0]) == fresh[1]
            assert store.check() == []
        finally:
            store.close()

    def test_a_lost_pack_is_quarantined_at_open(self, tmp_path: Path) -> None:
        items = make_items(4, seed=42)
        store = PackObjectStore(tmp_path / "objects")
        store.put_many("f1", items)
        store.close()
        (tmp_path / "objects" / "f1" / "packs" / "0.pack").unlink()
        store = PackObjectStore(tmp_path / "objects")
        try:
            assert store.has_many("f1", [oid for oid, _ in items]) == set()
            assert len(store.check()) == 4
            assert store.put_many("f1", items) == 4
            assert store.check() == []
        finally:
            store.close()

    def test_pack_and_lock_files_are_private(self, tmp_path: Path) -> None:
        store = PackObjectStore(tmp_path / "objects")
        try:
            store.put_many("f1", make_items(1, seed=27))
            pack = tmp_path / "objects" / "f1" / "packs" / "0.pack"
            assert pack.stat().st_mode & 0o077 == 0
            assert (tmp_path / "objects" / "writer.lock").stat().st_mode & 0o077 == 0
        finally:
            store.close()


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
