"""Put on the server a snapshot made elsewhere: the current head plus one file whose
name this (Linux) device cannot create, as a Mac or another file system could make it.

It goes through a device's real folder state (keys) and the real HTTP store, so the
other device meets it exactly as it would in use."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from chunksync.crypto.seal import seal
from chunksync.folder import SyncFolder
from chunksync.objects import ChunkRef, Commit, FileManifest, ObjectKind, Tree, TreeEntry
from chunksync.sync.objects_io import ObjectReader

LONG_NAME = "é" * 150  # 300 bytes of UTF-8: fine on APFS (255 UTF-16 units), not on ext4


def push_foreign_file(
    folder: Path, home: Path, name: str = LONG_NAME, data: bytes = b"from a mac"
) -> None:
    """A new head on the server: the current one plus ``name`` at the top level."""
    old = os.environ.get("CHUNKSYNC_HOME")
    os.environ["CHUNKSYNC_HOME"] = str(home)
    try:
        asyncio.run(_push(folder, name, data))
    finally:
        if old is None:
            del os.environ["CHUNKSYNC_HOME"]
        else:
            os.environ["CHUNKSYNC_HOME"] = old


async def _push(folder: Path, name: str, data: bytes) -> None:
    async with SyncFolder.open(folder) as f:
        keys, store = f.keys, f.store
        head = (await store.get_head()).head
        assert head is not None
        reader = ObjectReader(keys, f.index, store)
        commit = await reader.commit(bytes.fromhex(head))
        root = await _tree(reader, commit.tree)
        cid = keys.chunk_id(data)
        manifest = FileManifest(len(data), (ChunkRef(cid, len(data)),)).encode()
        mid = keys.meta_id(manifest)
        tree = Tree.of([*root.entries, TreeEntry(name, "file", mid, len(data), 1, False)]).encode()
        tid = keys.meta_id(tree)
        new = Commit(tid, (bytes.fromhex(head),), commit.seq + 1, "mac", "alice", 2).encode()
        nid = keys.meta_id(new)
        await store.put_many(
            [
                (cid, seal(keys, ObjectKind.CHUNK, cid, data)),
                (mid, seal(keys, ObjectKind.FILE, mid, manifest)),
                (tid, seal(keys, ObjectKind.TREE, tid, tree)),
                (nid, seal(keys, ObjectKind.COMMIT, nid, new)),
            ]
        )
        await store.cas_head(head, nid.hex())


async def _tree(reader: ObjectReader, tid: bytes) -> Tree:
    await reader.ensure_tree_closure(tid)  # type: ignore[arg-type]
    tree = reader.load_tree(tid)  # type: ignore[arg-type]
    assert isinstance(tree, Tree)
    return tree


__all__ = ["LONG_NAME", "push_foreign_file"]
