"""Devices converge through an in-memory store: the engine's behaviour, fast."""

from __future__ import annotations

import os

import pytest

from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.devices import Device, tree_of


@pytest.fixture
def store() -> MemoryChunkStore:
    return MemoryChunkStore()


@pytest.fixture
def devices(tmp_path, store, folder_keys):
    made = [Device(n, tmp_path / n, store, folder_keys) for n in ("a", "b", "c")]
    yield made
    for d in made:
        d.close()


async def test_two_devices_converge(devices):
    a, b, _ = devices
    a.write("hello.txt", "hello")
    a.write("docs/readme.md", "# readme", executable=True)
    (a.root / "empty").mkdir()
    os.symlink("hello.txt", a.root / "link")
    r = await a.sync()
    assert r.pushed
    r = await b.sync()
    assert r.applied == 2
    assert tree_of(a.root) == tree_of(b.root)
    # a second round changes nothing
    assert not (await a.sync()).changed
    assert not (await b.sync()).changed


async def test_edit_delete_rename_both_ways(devices):
    a, b, _ = devices
    a.write("x.txt", "one")
    a.write("d/y.txt", "two")
    await a.sync()
    await b.sync()
    b.write("x.txt", "one, edited on b")
    os.rename(b.root / "d", b.root / "e")
    await b.sync()
    await a.sync()
    assert tree_of(a.root) == tree_of(b.root)
    assert a.read("x.txt") == b"one, edited on b"
    assert not (a.root / "d").exists()
    (a.root / "x.txt").unlink()
    await a.sync()
    await b.sync()
    assert not (b.root / "x.txt").exists()
    assert tree_of(a.root) == tree_of(b.root)


async def test_concurrent_edits_make_a_conflicted_copy(devices):
    a, b, _ = devices
    a.write("notes.txt", "base")
    await a.sync()
    await b.sync()
    a.write("notes.txt", "from a")
    b.write("notes.txt", "from b")
    await a.sync()
    r = await b.sync()
    assert len(r.conflicts) == 1
    await a.sync()
    ta, tb = tree_of(a.root), tree_of(b.root)
    assert ta == tb
    assert a.read("notes.txt") == b"from a"
    copies = [p for p in ta if "conflicted copy" in p]
    assert len(copies) == 1 and copies[0].startswith("notes (conflicted copy ")
    assert copies[0].endswith(" from b).txt")
    assert a.read(copies[0]) == b"from b"


async def test_nothing_to_do_costs_one_small_request(devices, store):
    a, _, _ = devices
    for i in range(50):
        a.write(f"d{i % 5}/f{i}.txt", f"content {i}")
    await a.sync()
    store.calls.clear()
    result = await a.sync()
    assert not result.changed
    assert dict(store.calls) == {"get_head": 1}
    # once the server's storage epoch changes (it restarted), the server's copy of the
    # head is checked again, in one batched query
    store.epoch = "restarted"
    store.calls.clear()
    assert not (await a.sync()).changed
    assert dict(store.calls) == {"get_head": 1, "missing": 1}
    store.calls.clear()
    assert not (await a.sync()).changed
    assert dict(store.calls) == {"get_head": 1}


async def test_missing_folder_marker_never_syncs(devices):
    import shutil

    from chunksync.errors import ChunksyncError

    a, b, _ = devices
    a.write("x.txt", "x")
    await a.sync()
    await b.sync()
    shutil.rmtree(b.root / ".chunksync")
    with pytest.raises(ChunksyncError, match="marker"):
        await b.sync()
    await a.sync()
    assert (a.root / "x.txt").exists()


async def test_partial_scan_after_applying_remote_files_keeps_them(devices):
    """A watcher-driven (dirty-only) scan after a pull must not mistake the pulled
    files for deletions: the engine forgets the cached listings it touched."""
    a, b, _ = devices
    a.write("docs/one.txt", "1")
    a.write("other/x.txt", "x")
    await a.sync()
    await b.sync()
    a.write("docs/two.txt", "2")
    a.write("docs/sub/three.txt", "3")
    await a.sync()
    await b.sync()  # pulls two files into docs/
    b.write("other/y.txt", "y")
    result = await b.engine().sync(dirty={"other"})
    assert result.pushed
    await a.sync()
    assert (a.root / "docs" / "two.txt").exists() and (
        a.root / "docs" / "sub" / "three.txt"
    ).exists()
    assert tree_of(a.root) == tree_of(b.root)


async def test_paths_ignored_on_one_device_are_neither_pulled_nor_deleted(devices, store):
    a, b, _ = devices
    b.write(".chunksync/ignore", "*.tmp\nbuild/\n")
    b.write("local.tmp", "b's scratch file")
    a.write("shared.txt", "for everyone")
    a.write("cache.tmp", "a's temp file, synced from a")
    a.write("build/out.bin", "artifact")
    await a.sync()
    await b.sync()
    assert b.read("shared.txt") == b"for everyone"
    assert not (b.root / "cache.tmp").exists() and not (b.root / "build").exists()
    b.write("shared.txt", "edited on b")
    r = await b.sync()
    assert r.pushed
    await a.sync()
    # nothing ignored on b was deleted for a, and b's own scratch file never left b
    assert a.read("cache.tmp") == b"a's temp file, synced from a"
    assert a.read("build/out.bin") == b"artifact"
    assert a.read("shared.txt") == b"edited on b"
    assert not (a.root / "local.tmp").exists()
    assert not (await a.sync()).changed and not (await b.sync()).changed


async def test_files_spelled_nfd_on_disk_are_updated_in_place(devices):
    """Trees hold NFC names; a file spelled NFD on this disk (copied from a Mac) is
    still the file the tree means: it is replaced and deleted under its own spelling."""
    import unicodedata

    a, b, _ = devices
    nfd = unicodedata.normalize("NFD", "Ärger/Übersicht.txt")
    a.write(nfd, "v1")
    await a.sync()
    await b.sync()
    assert b.read("Ärger/Übersicht.txt") == b"v1"
    b.write("Ärger/Übersicht.txt", "v2 from b")
    await b.sync()
    result = await a.sync()
    assert result.rounds == 1
    assert a.read(nfd) == b"v2 from b"
    assert os.listdir(a.root / unicodedata.normalize("NFD", "Ärger")) == [
        unicodedata.normalize("NFD", "Übersicht.txt")
    ]
    (b.root / "Ärger" / "Übersicht.txt").unlink()
    await b.sync()
    await a.sync()
    assert os.listdir(a.root / unicodedata.normalize("NFD", "Ärger")) == []
