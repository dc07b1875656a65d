"""Behaviour of the pack store beyond the ObjectStore contract: persistence, pack
rolling, the read-only second process, and reconciling packs with the index at open."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from chunksync_server.storage import Damage, PackObjectStore, StorageError
from chunksync_server.storage import packfiles as packfiles_module
from tests.helpers.stores import make_items


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
