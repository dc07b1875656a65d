"""Hostile or broken servers and risky local situations never cost local data."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from chunksync.crypto.seal import seal
from chunksync.errors import HeldError, IntegrityError, RollbackError, UnsafePathError
from chunksync.fsops import DiskFullError
from chunksync.objects import Commit, ObjectKind, Tree, TreeEntry
from chunksync.transport.memory import MemoryChunkStore
from chunksync.wire import HeadState
from tests.helpers.devices import Device, tree_of


@pytest.fixture
def store() -> MemoryChunkStore:
    return MemoryChunkStore()


@pytest.fixture
def pair(tmp_path, store, folder_keys):
    a, b = (
        Device("a", tmp_path / "a", store, folder_keys),
        Device("b", tmp_path / "b", store, folder_keys),
    )
    yield a, b
    a.close()
    b.close()


def _chunk_ids(store: MemoryChunkStore, device: Device, rel: str) -> list[bytes]:
    state = device.index.get_state(rel)
    assert state is not None
    kind, plain = device.index.get_object(state.manifest_id)
    from chunksync.objects import decode_object

    return [c.id for c in decode_object(kind, plain).chunks]


async def _remote_edit_waiting_for(b: Device, a: Device) -> None:
    """doc.txt synced on both devices, then edited on a and pushed: b has a pull to do."""
    a.write("doc.txt", "v1")
    await a.sync()
    await b.sync()
    a.write("doc.txt", "v2 from a")
    await a.sync()


def _no_temp_files(device: Device) -> bool:
    return not any((device.root / ".chunksync" / "tmp").iterdir())


async def test_tampered_chunk_is_refused_and_nothing_written(pair, store):
    a, b = pair
    a.write("secret.txt", "payload" * 100)
    b.write("mine.txt", "local only")
    await a.sync()
    (cid,) = _chunk_ids(store, a, "secret.txt")
    blob = bytearray(store.peek(cid))
    blob[-5] ^= 1
    store._blobs[cid] = bytes(blob)
    before = tree_of(b.root)
    with pytest.raises(IntegrityError, match=cid.hex()[:12]):
        await b.sync()
    assert not (b.root / "secret.txt").exists()
    assert tree_of(b.root) == before
    assert _no_temp_files(b)


async def test_swapped_blob_is_refused(pair, store):
    a, b = pair
    a.write("one.txt", "first file")
    a.write("two.txt", "second file")
    await a.sync()
    (c1,) = _chunk_ids(store, a, "one.txt")
    (c2,) = _chunk_ids(store, a, "two.txt")
    store._blobs[c1] = store.peek(c2)
    with pytest.raises(IntegrityError, match="authentication failed"):
        await b.sync()
    assert not (b.root / "one.txt").exists()


async def test_rollback_to_an_older_head_is_refused(pair, store):
    a, b = pair
    a.write("f.txt", "v1")
    await a.sync()
    old = store._head
    a.write("f.txt", "v2")
    a.write("g.txt", "new")
    await a.sync()
    await b.sync()
    store._head = HeadState(old.head, old.seq + 5)  # a replayed older snapshot
    with pytest.raises(RollbackError, match="rolled back"):
        await b.sync()
    assert b.read("f.txt") == b"v2" and (b.root / "g.txt").exists()


async def test_emptied_server_never_becomes_deletions(pair, store):
    a, b = pair
    a.write("keep.txt", "precious")
    await a.sync()
    await b.sync()
    store._head = HeadState(None, 0)
    with pytest.raises(RollbackError, match="no snapshot"):
        await b.sync()
    assert b.read("keep.txt") == b"precious"


async def _push_hostile_tree(store, keys, entries) -> None:
    """A malicious device with the folder key publishes a tree with a bad name."""
    data = b"evil"
    cid = keys.chunk_id(data)
    from chunksync.objects import ChunkRef, FileManifest

    manifest = FileManifest(len(data), (ChunkRef(cid, len(data)),))
    mid = keys.meta_id(manifest.encode())
    tree = Tree.of([TreeEntry(name, "file", mid, len(data)) for name in entries])
    tid = keys.meta_id(tree.encode())
    commit = Commit(tid, (), 1, "mallory", "mallory", 1)
    coid = keys.meta_id(commit.encode())
    await store.put_many(
        [
            (cid, seal(keys, ObjectKind.CHUNK, cid, data)),
            (mid, seal(keys, ObjectKind.FILE, mid, manifest.encode())),
            (tid, seal(keys, ObjectKind.TREE, tid, tree.encode())),
            (coid, seal(keys, ObjectKind.COMMIT, coid, commit.encode())),
        ]
    )
    await store.cas_head(None, coid.hex())


@pytest.mark.parametrize("name", [".chunksync", "CON\x00"])
async def test_unsafe_names_from_the_server_are_refused(pair, store, folder_keys, name):
    _, b = pair
    b.write("mine.txt", "untouched")
    try:
        await _push_hostile_tree(store, folder_keys, [name])
    except IntegrityError:
        assert "\x00" in name  # only NUL is refused by the object model itself
        return
    before = tree_of(b.root)
    with pytest.raises(UnsafePathError):
        await b.sync()
    assert tree_of(b.root) == before


async def test_mass_delete_is_held_until_allowed(pair, store):
    a, b = pair
    for i in range(30):
        a.write(f"f{i:02}.txt", f"file {i}")
    await a.sync()
    await b.sync()
    for i in range(20):
        (a.root / f"f{i:02}.txt").unlink()
    with pytest.raises(HeldError, match="delete 20"):
        await a.sync()
    await a.sync(allow_mass_delete=True)
    with pytest.raises(HeldError):
        await b.sync()
    assert len(list(b.root.glob("f*.txt"))) == 30
    await b.sync(allow_mass_delete=True)
    assert len(list(b.root.glob("f*.txt"))) == 10


async def test_local_edit_during_sync_is_never_overwritten(pair, store, monkeypatch):
    a, b = pair
    await _remote_edit_waiting_for(b, a)
    # b edits doc.txt after its scan but before the write lands: the re-check catches it
    from chunksync.sync import download

    original = download.BatchWriter.add
    edited = []

    def edit_then_write(self, action):
        if not edited:
            edited.append(True)
            b.write("doc.txt", "b's unsynced edit")
        return original(self, action)

    monkeypatch.setattr(download.BatchWriter, "add", edit_then_write)
    result = await b.sync()
    assert result.rounds >= 2
    files = {p.name: p.read_text() for p in b.root.iterdir() if p.is_file()}
    assert "b's unsynced edit" in files.values()
    assert "v2 from a" in files.values()


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_full_disk_during_download(tmp_path, store, folder_keys, tiny_disk: Path):
    a = Device("a", tmp_path / "a", store, folder_keys)
    b = Device("b", tiny_disk / "b", store, folder_keys)
    try:
        a.write("small.txt", "fits")
        await a.sync()
        await b.sync()
        a.write("small.txt", "fits, edited")
        a.write("big.bin", os.urandom(3 << 20))
        await a.sync()
        with pytest.raises(DiskFullError, match="disk full"):
            await b.sync()
        assert b.read("small.txt") in (b"fits", b"fits, edited")
        assert not (b.root / "big.bin").exists()
        assert _no_temp_files(b)
    finally:
        a.close()
        b.close()


async def test_forked_head_with_an_accepted_sequence_is_refused(pair, store, folder_keys):
    a, b = pair
    a.write("f.txt", "v1")
    await a.sync()
    await b.sync()
    accepted = store._head
    # the server swaps in a different commit carrying the sequence b already accepted
    commit = a.index.get_object(bytes.fromhex(accepted.head))
    from chunksync.objects import decode_object

    original = decode_object(ObjectKind.COMMIT, commit[1])
    forged = Commit(original.tree, (), original.seq, "mallory", "mallory", 7)
    fid = folder_keys.meta_id(forged.encode())
    await store.put_many([(fid, seal(folder_keys, ObjectKind.COMMIT, fid, forged.encode()))])
    store._head = HeadState(fid.hex(), accepted.seq + 1)
    with pytest.raises(RollbackError, match="fork"):
        await b.sync()


async def test_edit_between_check_and_delete_is_put_back(pair, store, monkeypatch):
    """The narrowest race: the user saves a file after the delete's re-check but before
    the file is moved away. What moved is compared with what was checked, and put back."""
    a, b = pair
    a.write("doc.txt", "v1")
    await a.sync()
    await b.sync()
    (a.root / "doc.txt").unlink()
    await a.sync()
    from chunksync import fsops

    real_move_out = fsops.move_out
    raced = []

    def move_out_after_an_edit(root, relpath, dest_dir, dest_name):
        if not raced:
            raced.append(True)
            with open(root / relpath, "a") as f:
                f.write(" and an unsynced edit")
            os.utime(root / relpath, ns=(1, 1))  # even with a clock that did not move
        return real_move_out(root, relpath, dest_dir, dest_name)

    monkeypatch.setattr(fsops, "move_out", move_out_after_an_edit)
    result = await b.sync()
    assert raced and result.rounds >= 2
    assert b.read("doc.txt") == b"v1 and an unsynced edit"
    await a.sync()
    assert a.read("doc.txt") == b"v1 and an unsynced edit"  # the edit survived the delete


async def test_edit_between_check_and_replace_is_kept_beside(pair, store, monkeypatch):
    """The same race for a replaced file: the old version is hard-linked aside before the
    rename, so an edit that landed after the re-check survives as a copy and is synced."""
    a, b = pair
    await _remote_edit_waiting_for(b, a)
    from chunksync.sync import apply

    real_check = apply.Applier.check
    raced = []

    def check_then_race(self, path, expect):
        inner = real_check(self, path, expect)

        def check(current):
            inner(current)
            if path == "doc.txt" and not raced:
                raced.append(True)
                with open(self.root / path, "a") as f:
                    f.write(" + b's last-moment edit")

        return check

    monkeypatch.setattr(apply.Applier, "check", check_then_race)
    result = await b.sync()
    assert raced and result.rounds >= 2
    contents = sorted(p.read_text() for p in b.root.iterdir() if p.is_file())
    assert contents == ["v1 + b's last-moment edit", "v2 from a"]
    await a.sync()
    assert tree_of(a.root, mtimes=False) == tree_of(b.root, mtimes=False)
