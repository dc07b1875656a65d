"""Failure 6: a ``.chunksync`` directory below the root, from the server or on disk.

A nested state directory holds another folder's key, config and index. From the
server it must never reach the disk (at any depth, in any letter case); on disk it is
never synced, so other devices, which would refuse it, never see it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import seal
from chunksync.errors import UnsafePathError
from chunksync.objects import ChunkRef, Commit, FileManifest, ObjectId, ObjectKind, Tree, TreeEntry
from chunksync.scanner import scan
from chunksync.storage.index import Index
from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.corpus import write_tree
from tests.helpers.devices import Device, tree_of


async def _push_nested_state_tree(
    store: MemoryChunkStore, keys: FolderKeys, state_name: str
) -> None:
    """A device holding the key publishes ``sub/<state_name>/key`` plus a harmless file."""
    data = b"attacker's key"
    cid = keys.chunk_id(data)
    manifest = FileManifest(len(data), (ChunkRef(cid, len(data)),))
    mid = keys.meta_id(manifest.encode())
    blobs = [
        (cid, seal(keys, ObjectKind.CHUNK, cid, data)),
        (mid, seal(keys, ObjectKind.FILE, mid, manifest.encode())),
    ]

    def put_tree(entries: list[TreeEntry]) -> ObjectId:
        tree = Tree.of(entries)
        tid = keys.meta_id(tree.encode())
        blobs.append((tid, seal(keys, ObjectKind.TREE, tid, tree.encode())))
        return tid

    state = put_tree([TreeEntry("key", "file", mid, len(data))])
    sub = put_tree(
        [TreeEntry(state_name, "dir", state), TreeEntry("ok.txt", "file", mid, len(data))]
    )
    root = put_tree([TreeEntry("sub", "dir", sub)])
    commit = Commit(root, (), 1, "mallory", "mallory", 1)
    coid = keys.meta_id(commit.encode())
    blobs.append((coid, seal(keys, ObjectKind.COMMIT, coid, commit.encode())))
    await store.put_many(blobs)
    await store.cas_head(None, coid.hex())


@pytest.mark.parametrize("state_name", [".chunksync", ".ChunkSync"])
async def test_nested_chunksync_from_the_server_is_never_written(
    tmp_path: Path, folder_keys: FolderKeys, state_name: str
) -> None:
    store = MemoryChunkStore()
    b = Device("b", tmp_path / "b", store, folder_keys)
    try:
        b.write("mine.txt", "untouched")
        await _push_nested_state_tree(store, folder_keys, state_name)
        before = tree_of(b.root)
        with pytest.raises(UnsafePathError, match="state directory"):
            await b.sync()
        assert tree_of(b.root) == before
        assert not (b.root / "sub").exists()
    finally:
        b.close()


def test_nested_chunksync_on_disk_is_not_synced(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(
        root,
        {
            "sub": {
                ".chunksync": {"key": "other folder's key"},
                ".ChunkSync": {"x": "x"},
                "a.txt": "a",
            },
            "deep": {"er": {".CHUNKSYNC": {"index": {"data.mdb": "db"}}}},
        },
    )
    with Index.open(tmp_path / "idx") as index:
        result = scan(root, folder_keys, index)
    assert set(result.entries) == {"sub", "sub/a.txt", "deep", "deep/er"}
