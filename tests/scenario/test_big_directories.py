"""A 1,000-entry directory is stored in parts: an edit of one entry stores a small
fraction of the listing at the server, another device follows, and a hostile split
listing from the server is refused without touching the folder."""

from __future__ import annotations

import pytest

from chunksync.crypto.seal import parse_header, seal
from chunksync.errors import IntegrityError
from chunksync.objects import Commit, ObjectId, ObjectKind, Tree, TreeParts
from chunksync.sync.objects_io import ObjectReader
from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.devices import Device, tree_of

pytestmark = pytest.mark.scenario

FILES = 1000


def _stored(store: MemoryChunkStore) -> dict[ObjectId, bytes]:
    return dict(store._blobs)


def _metadata_bytes(blobs: dict[ObjectId, bytes]) -> int:
    """Bytes of everything but file content: trees, manifests, commits."""
    return sum(len(b) for b in blobs.values() if parse_header(b).kind != ObjectKind.CHUNK)


async def _big_folder(a: Device) -> None:
    for i in range(FILES):
        a.write(f"big/file-{i:04d}.txt", f"content {i}\n")
    await a.sync()


async def test_one_edit_in_a_1000_entry_directory_stores_under_10_percent(memory_pair) -> None:
    a, b, store = memory_pair
    await _big_folder(a)
    await b.sync()
    reader = ObjectReader(a.keys, a.index, store)
    big = a.index.get_dirtree("big")
    assert big is not None and len(reader.load_tree(big).entries) == FILES
    assert reader.tree_parts(big), "a 1,000-entry listing is stored in parts"
    whole = reader.load_tree(big).encode()
    whole_sealed = len(seal(a.keys, ObjectKind.TREE, a.keys.meta_id(whole), whole))
    before = _stored(store)

    a.write("big/file-0500.txt", "edited\n")
    await a.sync()
    added = {oid: blob for oid, blob in _stored(store).items() if oid not in before}
    # the commit, the root listing, the file's manifest and chunk, one part, the index
    assert _metadata_bytes(added) < whole_sealed // 10
    assert _metadata_bytes(added) < len(whole) // 10

    await b.sync()
    assert tree_of(b.root) == tree_of(a.root)
    assert b.read("big/file-0500.txt") == b"edited\n"
    b.write("big/new.txt", "from b\n")  # an insertion, the other way
    (b.root / "big/file-0007.txt").unlink()
    before = _stored(store)
    await b.sync()
    added = {oid: blob for oid, blob in _stored(store).items() if oid not in before}
    assert _metadata_bytes(added) < whole_sealed // 10
    await a.sync()
    assert tree_of(a.root) == tree_of(b.root)


async def _forge_split_head(a: Device, store: MemoryChunkStore, parts: list[Tree]) -> None:
    """What a hostile peer holding the key could commit: ``big`` as a split listing made
    of ``parts`` (out of order here)."""
    keys = a.keys
    blobs = []
    for part in parts:
        data = part.encode()
        blobs.append((keys.meta_id(data), seal(keys, ObjectKind.TREE, keys.meta_id(data), data)))
    index = TreeParts(tuple(oid for oid, _ in blobs)).encode()
    big = keys.meta_id(index)
    blobs.append((big, seal(keys, ObjectKind.TREE, big, index)))
    head = await store.get_head()
    assert head.head is not None
    reader = ObjectReader(keys, a.index, store)
    parent = await reader.commit(ObjectId(bytes.fromhex(head.head)))
    root = Tree.of(
        [
            e if e.name != "big" else type(e)("big", "dir", big)
            for e in reader.load_tree(parent.tree).entries
        ]
    ).encode()
    rid = keys.meta_id(root)
    blobs.append((rid, seal(keys, ObjectKind.TREE, rid, root)))
    parent_id = ObjectId(bytes.fromhex(head.head))
    commit = Commit(rid, (parent_id,), parent.seq + 1, "evil", "x", 1)
    data = commit.encode()
    cid = keys.meta_id(data)
    blobs.append((cid, seal(keys, ObjectKind.COMMIT, cid, data)))
    await store.put_many(blobs)
    await store.cas_head(head.head, cid.hex())


async def test_a_hostile_split_listing_is_refused_and_nothing_changes(memory_pair) -> None:
    a, b, store = memory_pair
    await _big_folder(a)
    await b.sync()
    reader = ObjectReader(a.keys, a.index, store)
    entries = reader.load_tree(a.index.get_dirtree("big")).entries  # type: ignore[arg-type]
    # two runs of entries that overlap: names would repeat across parts
    await _forge_split_head(a, store, [Tree(entries[:600]), Tree(entries[500:])])
    before = tree_of(b.root)
    with pytest.raises(IntegrityError, match="out of name order or repeats a name"):
        await b.sync()
    assert tree_of(b.root) == before
