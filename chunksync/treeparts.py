"""Large directory listings stored in parts, and the one way to read any listing back.

A directory's listing is one TREE object while its canonical encoding stays under
:data:`SPLIT_BYTES` (almost every directory). A larger one would be stored whole again
in every snapshot that changes one of its entries: 150 KB for a 1,000-file directory
to record one edit. So, as large files are cut into chunks, a large listing is cut into
*parts* — leaf trees, each a run of consecutive entries — named in order by a
:class:`~chunksync.objects.TreeParts` index, which is the directory's TREE object (its
id is the one directory entries and commits carry). Changing one entry stores one part
(~4 KB) and the index (~70 bytes per part) instead of the whole listing.

Cut points are content-defined, as in the chunker: after an entry whose *name* hashes
(keyed with the folder key, so the server learns nothing from where the cuts fall) to a
multiple of :data:`_CUT_EVERY`, once a part holds :data:`PART_MIN_BYTES`; always before a
part would exceed :data:`PART_MAX_BYTES`. Cuts depend on names alone (plus the size bounds),
so editing an entry changes only its part, and adding or removing one changes its part
and at most a neighbour. The split is deterministic: equal directories get equal ids on
every device of the folder.

Readers never see parts: :func:`load_tree` returns the whole :class:`~chunksync.objects.Tree`
either way, and checks what a hostile or buggy peer could send: every part a non-empty
*leaf* tree (parts do not nest: the depth is one), names strictly increasing across
parts, at most :data:`~chunksync.objects.MAX_ENTRIES` in all (ids and kinds are checked
by whoever reads the objects, as for every object). Graph walks that need object ids
rather than entries (upload, heal, reachability for prune, fetching a closure) use
:func:`children`: the ids one TREE object refers to, parts included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .errors import IntegrityError
from .objects import (
    MAX_ENTRIES,
    ObjectId,
    ObjectKind,
    Tree,
    TreeEntry,
    TreeParts,
    _canonical,
    short_id,
)

__all__ = [
    "PART_MAX_BYTES",
    "PART_MIN_BYTES",
    "SPLIT_BYTES",
    "StoredTree",
    "children",
    "encode_tree",
    "load_tree",
    "part_ids",
]

SPLIT_BYTES = 8 * 1024  # a listing encoded in at most this many bytes stays one object
PART_MIN_BYTES = 2 * 1024
PART_MAX_BYTES = 8 * 1024
_CUT_EVERY = 16  # ~1 entry in 16 ends a part once it holds PART_MIN_BYTES
_CUT_DOMAIN = b"chunksync tree cut\0"
_OPEN, _CLOSE = b'{"e":[', b'],"t":"tree"}'

#: keyed hash of the folder (``FolderKeys.meta_id``): names a metadata object's bytes
MetaId = Callable[[bytes], ObjectId]
#: a TREE object by id, decoded (either form); raises KeyError when it is not at hand
ReadTree = Callable[[ObjectId], Tree | TreeParts]


@dataclass(frozen=True, slots=True)
class StoredTree:
    """A listing as stored: its id and the objects to keep, parts before the index
    (so a reader holding the index holds its parts)."""

    id: ObjectId
    objects: tuple[tuple[ObjectId, bytes], ...]


def _leaf(encoded_entries: list[bytes]) -> bytes:
    """The canonical encoding of a leaf tree (``Tree.encode``), from its entries' own."""
    return _OPEN + b",".join(encoded_entries) + _CLOSE


def encode_tree(tree: Tree, meta_id: MetaId) -> StoredTree:
    """The objects that store ``tree``: one, or its parts and their index."""
    encoded = [_canonical(e.to_doc()) for e in tree.entries]
    runs = [encoded]
    if len(_OPEN) + sum(len(e) + 1 for e in encoded) + len(_CLOSE) > SPLIT_BYTES:
        runs = list(_runs(tree.entries, encoded, meta_id))
    objects = [(meta_id(data), data) for data in map(_leaf, runs)]
    if len(objects) == 1:
        return StoredTree(objects[0][0], tuple(objects))
    index = TreeParts(tuple(oid for oid, _ in objects)).encode()
    top = meta_id(index)
    return StoredTree(top, (*objects, (top, index)))


def _runs(
    entries: tuple[TreeEntry, ...], encoded: list[bytes], meta_id: MetaId
) -> Iterator[list[bytes]]:
    run: list[bytes] = []
    size = 0
    for entry, data in zip(entries, encoded, strict=True):
        if run and size + len(data) + 1 > PART_MAX_BYTES:
            yield run
            run, size = [], 0
        run.append(data)
        size += len(data) + 1
        if size >= PART_MIN_BYTES and _cuts_after(entry.name, meta_id):
            yield run
            run, size = [], 0
    if run:
        yield run


def _cuts_after(name: str, meta_id: MetaId) -> bool:
    return meta_id(_CUT_DOMAIN + name.encode())[0] % _CUT_EVERY == 0


def load_tree(oid: ObjectId, read: ReadTree) -> Tree:
    """The directory ``oid`` with all its entries, whichever form it is stored in.

    Every walker of directories reads listings through this function. A split listing
    is checked as it is put together (see the module doc); any fault raises
    :class:`~chunksync.errors.IntegrityError` naming the tree.
    """
    top = read(oid)
    if isinstance(top, Tree):
        return top
    entries: list[TreeEntry] = []
    for pid in top.parts:
        part = read(pid)
        what = f"split tree {short_id(oid)}: part {short_id(pid)}"
        if not isinstance(part, Tree):
            raise IntegrityError(f"{what} is split itself (parts do not nest)")
        if not part.entries:
            raise IntegrityError(f"{what} is empty")
        if entries and part.entries[0].name <= entries[-1].name:
            raise IntegrityError(f"{what} is out of name order or repeats a name")
        if len(entries) + len(part.entries) > MAX_ENTRIES:
            raise IntegrityError(f"split tree {short_id(oid)}: over {MAX_ENTRIES} entries")
        entries.extend(part.entries)
    return Tree(tuple(entries))


def part_ids(obj: Tree | TreeParts) -> tuple[ObjectId, ...]:
    """The parts a TREE object is stored in (none for a listing kept whole)."""
    return obj.parts if isinstance(obj, TreeParts) else ()


def children(obj: Tree | TreeParts) -> Iterator[tuple[ObjectKind, ObjectId]]:
    """The objects one decoded TREE object refers to: its parts (TREE objects) for a
    split listing; for a leaf, each subdirectory's tree and each file's manifest.

    This is the reachability step of every graph walk over stored objects: following it
    from a commit's tree reaches every part, subtree and manifest below it.
    """
    if isinstance(obj, TreeParts):
        for pid in obj.parts:
            yield ObjectKind.TREE, pid
        return
    for entry in obj.entries:
        if entry.id is None:
            continue
        if entry.kind == "dir":
            yield ObjectKind.TREE, entry.id
        elif entry.kind == "file":
            yield ObjectKind.FILE, entry.id
