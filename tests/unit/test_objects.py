"""Object model: canonical encodings, round trips, validation, and Merkle diffing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunksync.crypto.seal import open_blob, seal
from chunksync.errors import IntegrityError
from chunksync.objects import (
    MAX_CHUNK_SIZE,
    ChunkRef,
    Commit,
    FileManifest,
    ObjectId,
    ObjectKind,
    Tree,
    TreeEntry,
    decode_object,
    short_id,
)
from chunksync.treediff import diff_trees, walk_tree

ID = ObjectId(bytes(range(32)))
ID2 = ObjectId(bytes(range(1, 33)))


def _json_canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@given(
    st.lists(
        st.tuples(st.binary(min_size=32, max_size=32), st.integers(1, MAX_CHUNK_SIZE)), max_size=20
    )
)
def test_manifest_encoding_is_canonical_json(chunks):
    manifest = FileManifest(
        sum(s for _, s in chunks), tuple(ChunkRef(ObjectId(i), s) for i, s in chunks)
    )
    data = manifest.encode()
    assert data == _json_canonical(json.loads(data))
    assert decode_object(ObjectKind.FILE, data) == manifest


def _objects():
    tree = Tree.of(
        [
            TreeEntry("zeta.txt", "file", ID, 10, 123, executable=True),
            TreeEntry("Ärger", "dir", ID2),
            TreeEntry("link", "symlink", None, 0, 5, target="zeta.txt"),
        ]
    )
    commit = Commit(
        ID, (ID2,), 7, "laptop", "alice", 1_764_000_000_000_000_000, {"added": 2}, "msg"
    )
    manifest = FileManifest(10, (ChunkRef(ID, 4), ChunkRef(ID2, 6)))
    return [(ObjectKind.TREE, tree), (ObjectKind.COMMIT, commit), (ObjectKind.FILE, manifest)]


@pytest.mark.parametrize(("kind", "obj"), _objects())
def test_every_object_type_round_trips_in_the_clear_and_sealed(kind, obj, folder_keys):
    data = obj.encode()
    assert data == _json_canonical(json.loads(data)), "encoding must be canonical"
    assert decode_object(kind, data) == obj
    oid = folder_keys.meta_id(data)
    assert (
        decode_object(kind, open_blob(folder_keys, kind, oid, seal(folder_keys, kind, oid, data)))
        == obj
    )


@pytest.mark.parametrize(("kind", "obj"), _objects())
def test_tampering_with_any_object_type_names_the_object(kind, obj, folder_keys):
    data = obj.encode()
    oid = folder_keys.meta_id(data)
    blob = bytearray(seal(folder_keys, kind, oid, data))
    blob[len(blob) // 2] ^= 0x20
    with pytest.raises(IntegrityError, match=short_id(oid)):
        open_blob(folder_keys, kind, oid, bytes(blob))
    other = ObjectKind.CHUNK if kind != ObjectKind.CHUNK else ObjectKind.TREE
    with pytest.raises(IntegrityError, match=short_id(oid)):
        open_blob(folder_keys, other, oid, seal(folder_keys, kind, oid, data))


def test_tree_order_and_names_are_enforced():
    a, b = TreeEntry("a", "file", ID), TreeEntry("b", "file", ID)
    with pytest.raises(IntegrityError, match="sorted"):
        Tree((b, a))
    with pytest.raises(IntegrityError, match="duplicate"):
        Tree((a, a))
    for bad in ("", ".", "..", "a/b", "nul\0"):
        with pytest.raises(IntegrityError):
            TreeEntry(bad, "file", ID)
    with pytest.raises(IntegrityError, match="NFC"):
        TreeEntry("A\u0308rger", "file", ID)  # NFD spelling of Ärger
    with pytest.raises(IntegrityError, match="target"):
        TreeEntry("l", "symlink", None)


def test_same_tree_same_id_on_two_devices(folder_keys, other_folder_keys):
    entries = [TreeEntry("b.txt", "file", ID, 3), TreeEntry("a.txt", "file", ID2, 4)]
    one, two = Tree.of(entries), Tree.of(list(reversed(entries)))
    assert one.encode() == two.encode()
    assert folder_keys.meta_id(one.encode()) == folder_keys.meta_id(two.encode())
    assert folder_keys.meta_id(one.encode()) != other_folder_keys.meta_id(one.encode())


@pytest.mark.parametrize("junk", [b"", b"[]", b'{"t":"tree"}', b'{"t":"file","e":[]}', b"\xff"])
def test_malformed_metadata_is_an_integrity_error(junk):
    with pytest.raises(IntegrityError):
        decode_object(ObjectKind.TREE, junk)


def test_diff_visits_only_subtrees_whose_ids_differ(folder_keys):
    store: dict[bytes, Tree] = {}

    def put(tree: Tree) -> ObjectId:
        oid = folder_keys.meta_id(tree.encode())
        store[oid] = tree
        return oid

    same = put(Tree.of([TreeEntry(f"f{i}", "file", ID) for i in range(5)]))
    old_sub = put(Tree.of([TreeEntry("x", "file", ID)]))
    new_sub = put(Tree.of([TreeEntry("x", "file", ID2), TreeEntry("y", "file", ID)]))
    old = put(Tree.of([TreeEntry("same", "dir", same), TreeEntry("sub", "dir", old_sub)]))
    new = put(Tree.of([TreeEntry("same", "dir", same), TreeEntry("sub", "dir", new_sub)]))
    loaded: list[bytes] = []

    def load(oid: ObjectId) -> Tree:
        loaded.append(oid)
        return store[oid]

    diffs = {(d.path, d.change) for d in diff_trees(old, new, load)}
    assert diffs == {("sub/x", "modified"), ("sub/y", "added")}
    assert same not in loaded
    assert sorted(p for p, _ in walk_tree(new, store.__getitem__)) == [
        "same",
        *[f"same/f{i}" for i in range(5)],
        "sub",
        "sub/x",
        "sub/y",
    ]
