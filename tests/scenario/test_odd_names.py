"""Failure 8: one odd file name no longer stops the folder on every other device."""

from __future__ import annotations

import pytest

from chunksync.crypto.seal import seal
from chunksync.objects import (
    ChunkRef,
    Commit,
    FileManifest,
    ObjectKind,
    Tree,
    TreeEntry,
    decode_object,
)


@pytest.fixture
def pair(memory_pair):
    return memory_pair


@pytest.mark.parametrize("odd", ["back\\slash.txt", "bell\x07.txt", "c1\x85.txt"])
async def test_a_control_or_backslash_name_syncs_to_other_posix_devices(pair, odd) -> None:
    a, b, _ = pair
    a.write(odd, "odd but legal on Linux")
    a.write("plain.txt", "plain")
    await a.sync()
    await b.sync()  # was: "unsafe path from server … backslash", nothing synced at all
    assert b.read(odd) == b"odd but legal on Linux" and b.read("plain.txt") == b"plain"


async def test_a_name_this_device_cannot_create_is_skipped_here_alone(pair, folder_keys) -> None:
    """A 300-byte name (fine on a Mac, too long for Linux) is skipped and reported; the
    rest of the tree applies, and the entry stays on the server."""
    a, b, store = pair
    a.write("plain.txt", "plain")
    head = (await a.sync()).head
    assert head is not None
    found = a.index.get_object(bytes.fromhex(head))
    assert found is not None
    commit = decode_object(ObjectKind.COMMIT, found[1])
    root = decode_object(ObjectKind.TREE, a.index.get_object(commit.tree)[1])
    data = b"from a mac"
    cid = folder_keys.chunk_id(data)
    manifest = FileManifest(len(data), (ChunkRef(cid, len(data)),))
    mid = folder_keys.meta_id(manifest.encode())
    long_name = "é" * 150  # 300 bytes of UTF-8
    tree = Tree.of([*root.entries, TreeEntry(long_name, "file", mid, len(data), 1, False)])
    tid = folder_keys.meta_id(tree.encode())
    new = Commit(tid, (bytes.fromhex(head),), commit.seq + 1, "mac", "alice", 2)
    nid = folder_keys.meta_id(new.encode())
    await store.put_many(
        [
            (cid, seal(folder_keys, ObjectKind.CHUNK, cid, data)),
            (mid, seal(folder_keys, ObjectKind.FILE, mid, manifest.encode())),
            (tid, seal(folder_keys, ObjectKind.TREE, tid, tree.encode())),
            (nid, seal(folder_keys, ObjectKind.COMMIT, nid, new.encode())),
        ]
    )
    await store.cas_head(head, nid.hex())
    result = await b.sync()
    assert b.read("plain.txt") == b"plain"
    assert [p for p, _ in result.skipped] == [long_name] and "255" in result.skipped[0][1]
    b.write("more.txt", "b goes on")
    await b.sync()
    after = decode_object(ObjectKind.COMMIT, b.index.get_object(bytes.fromhex(store._head.head))[1])
    names = [
        e.name for e in decode_object(ObjectKind.TREE, b.index.get_object(after.tree)[1]).entries
    ]
    assert long_name in names and "more.txt" in names  # kept on the server, never deleted
