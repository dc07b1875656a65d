"""Large listings in parts (chunksync.treeparts): round trip, incremental cost, and a
hostile peer's split trees refused in one line."""

from __future__ import annotations

import json

import pytest

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.errors import IntegrityError
from chunksync.objects import (
    MAX_PARTS,
    ObjectId,
    ObjectKind,
    Tree,
    TreeEntry,
    TreeParts,
    decode_object,
)
from chunksync.treeparts import (
    PART_MAX_BYTES,
    SPLIT_BYTES,
    StoredTree,
    children,
    encode_tree,
    load_tree,
    part_ids,
)

pytestmark = pytest.mark.unit

KEYS = FolderKeys(bytes(32))
MTIME = 1_764_000_000_123_456_789


def _entry(i: int, *, size: int = 100) -> TreeEntry:
    return TreeEntry(f"file-{i:05d}.txt", "file", KEYS.meta_id(b"m%d" % i), size, MTIME)


def _big(n: int = 1000) -> Tree:
    return Tree.of([_entry(i) for i in range(n)])


def _reader(stored: StoredTree | list[StoredTree]):
    objects = {}
    for s in stored if isinstance(stored, list) else [stored]:
        objects.update(dict(s.objects))

    def read(oid: ObjectId) -> Tree | TreeParts:
        obj = decode_object(ObjectKind.TREE, objects[oid], oid)
        assert isinstance(obj, Tree | TreeParts)
        return obj

    return read


def test_a_small_listing_stays_one_object_as_before() -> None:
    tree = Tree.of([_entry(i) for i in range(10)])
    stored = encode_tree(tree, KEYS.meta_id)
    assert stored.objects == ((KEYS.meta_id(tree.encode()), tree.encode()),)
    assert stored.id == KEYS.meta_id(tree.encode())
    assert load_tree(stored.id, _reader(stored)) == tree


def test_a_large_listing_is_split_and_put_together_again() -> None:
    tree = _big()
    assert len(tree.encode()) > SPLIT_BYTES
    stored = encode_tree(tree, KEYS.meta_id)
    *parts, (top, index) = stored.objects
    assert top == stored.id == KEYS.meta_id(index)
    assert len(parts) > 2
    for oid, data in parts:  # each part is a canonical leaf tree, named by its bytes
        assert len(data) <= PART_MAX_BYTES + 32
        part = decode_object(ObjectKind.TREE, data)
        assert isinstance(part, Tree) and part.encode() == data and KEYS.meta_id(data) == oid
    assert load_tree(stored.id, _reader(stored)) == tree
    assert encode_tree(tree, KEYS.meta_id) == stored  # deterministic
    top_obj = _reader(stored)(stored.id)
    assert part_ids(top_obj) == tuple(oid for oid, _ in parts)
    assert list(children(top_obj)) == [(ObjectKind.TREE, oid) for oid, _ in parts]


def _new_bytes(old: StoredTree, new: StoredTree) -> int:
    held = {oid for oid, _ in old.objects}
    return sum(len(data) for oid, data in new.objects if oid not in held)


def test_one_changed_entry_stores_a_small_fraction_of_the_listing() -> None:
    tree = _big()
    listing = len(tree.encode())
    old = encode_tree(tree, KEYS.meta_id)
    entries = list(tree.entries)
    entries[500] = _entry(500, size=101)  # one file edited
    edited = encode_tree(Tree(tuple(entries)), KEYS.meta_id)
    assert _new_bytes(old, edited) < listing // 10
    added = encode_tree(Tree.of([*entries, _entry(100_000)]), KEYS.meta_id)  # one file added
    assert _new_bytes(old, added) < listing // 10
    removed = encode_tree(Tree(tuple(entries[:300] + entries[301:])), KEYS.meta_id)
    assert _new_bytes(old, removed) < listing // 10
    for stored in (edited, added, removed):
        assert len(_reader(stored)(stored.id).parts) > 2  # type: ignore[union-attr]


def test_children_of_a_leaf_are_its_subtrees_and_manifests() -> None:
    sub, man = KEYS.meta_id(b"sub"), KEYS.meta_id(b"man")
    tree = Tree.of(
        [
            TreeEntry("d", "dir", sub),
            TreeEntry("f", "file", man, 1),
            TreeEntry("l", "symlink", None, target="f"),
        ]
    )
    assert list(children(tree)) == [(ObjectKind.TREE, sub), (ObjectKind.FILE, man)]
    assert part_ids(tree) == ()


# --- a hostile peer's split trees ------------------------------------------------------

ID1, ID2, ID3 = (KEYS.meta_id(b"%d" % i) for i in range(3))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"t": "tree", "p": [ID1.hex()]}, "number of parts"),
        ({"t": "tree", "p": []}, "number of parts"),
        ({"t": "tree", "p": [ID1.hex(), ID1.hex()]}, "one part twice"),
        ({"t": "tree", "p": [ID1.hex(), "zz"]}, "malformed object id"),
        ({"t": "tree", "p": [ID1.hex(), 7]}, "malformed object id"),
        ({"t": "tree", "p": "ab"}, "must be list"),
        ({"t": "tree", "p": [ID1.hex(), ID2.hex()], "e": []}, "unknown field"),
        ({"t": "tree", "p": [ID1.hex()] * (MAX_PARTS + 1)}, "number of 'p'"),
    ],
)
def test_malformed_split_tree_objects_are_refused(doc: dict, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        decode_object(ObjectKind.TREE, json.dumps(doc).encode(), ID3)


def _forged(parts: list[Tree | TreeParts]) -> tuple[ObjectId, dict[ObjectId, bytes]]:
    objects = {KEYS.meta_id(p.encode()): p.encode() for p in parts}
    index = TreeParts(tuple(KEYS.meta_id(p.encode()) for p in parts)).encode()
    objects[KEYS.meta_id(index)] = index
    return KEYS.meta_id(index), objects


def _load_forged(parts: list[Tree | TreeParts]) -> Tree:
    top, objects = _forged(parts)

    def read(oid: ObjectId) -> Tree | TreeParts:
        obj = decode_object(ObjectKind.TREE, objects[oid], oid)
        assert isinstance(obj, Tree | TreeParts)
        return obj

    return load_tree(top, read)


A, B, C = (Tree((_entry(i),)) for i in range(3))


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([B, A], "out of name order"),
        ([A, Tree((_entry(0), _entry(1)))], "out of name order or repeats a name"),
        ([A, Tree(())], "is empty"),
        ([A, TreeParts((KEYS.meta_id(B.encode()), KEYS.meta_id(C.encode())))], "do not nest"),
    ],
    ids=["unordered", "overlapping", "empty part", "nested"],
)
def test_hostile_split_trees_are_refused_in_one_line(parts: list, message: str) -> None:
    with pytest.raises(IntegrityError, match=message) as caught:
        _load_forged(parts)
    assert "\n" not in str(caught.value)


def test_a_well_formed_forged_split_tree_loads() -> None:
    assert _load_forged([A, B, C]) == Tree((_entry(0), _entry(1), _entry(2)))
