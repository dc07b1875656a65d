"""What a snapshot needs: the one place that knows which ids an object points at.

``prune`` asks the server to delete everything no kept snapshot reaches, so a
mistake here loses data. Every walk that decides what is *live* therefore goes through
:func:`children`, the single function that lists an object's child ids by kind; a new
object format (a split directory, a chunk list kept apart from its manifest) changes
this function and nothing else. :func:`closure` walks level by level, fetching (and
verifying, through :class:`~chunksync.sync.objects_io.ObjectReader`) a whole level of
metadata per round trip; chunks are leaves and are never downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import treeparts
from .objects import Commit, FileManifest, ObjectId, ObjectKind, Tree, TreeParts
from .sync.objects_io import ObjectReader

__all__ = ["children", "closure"]

Child = tuple[ObjectKind, ObjectId]
#: kinds whose objects point at others (the walk loads these; the rest are leaves)
_INNER = (ObjectKind.COMMIT, ObjectKind.TREE, ObjectKind.FILE)


def children(kind: ObjectKind, obj: object, *, parents: bool = False) -> list[Child]:
    """The ids ``obj`` (a decoded object of ``kind``) points at, each with its kind.

    A commit's parents are listed only with ``parents=True``: a snapshot needs its
    tree, and the history chain is walked separately (every commit is kept).
    """
    if kind == ObjectKind.COMMIT:
        assert isinstance(obj, Commit)  # nosec B101  # invariant for the type checker
        out: list[Child] = [(ObjectKind.TREE, obj.tree)]
        if parents:
            out.extend((ObjectKind.COMMIT, p) for p in obj.parents)
        return out
    if kind == ObjectKind.TREE:  # a leaf listing, or the parts of a split one
        assert isinstance(obj, Tree | TreeParts)  # nosec B101
        return list(treeparts.children(obj))
    if kind == ObjectKind.FILE:
        assert isinstance(obj, FileManifest)  # nosec B101
        return [(ObjectKind.CHUNK, ref.id) for ref in obj.chunks]
    return []


def _load(reader: ObjectReader, kind: ObjectKind, oid: ObjectId) -> object:
    if kind == ObjectKind.COMMIT:
        return reader.load_commit(oid)
    if kind == ObjectKind.TREE:  # as stored: a split listing's parts are objects too
        return reader.tree_object(oid)
    return reader.load_manifest(oid)


async def closure(reader: ObjectReader, roots: Iterable[Child]) -> set[ObjectId]:
    """Every id reachable from ``roots`` (the roots included), walked a level at a time."""
    seen: set[ObjectId] = set()
    frontier: list[Child] = []
    for kind, oid in roots:
        if oid not in seen:
            seen.add(oid)
            frontier.append((kind, oid))
    while frontier:
        level: list[Child] = []
        for kind in _INNER:
            ids = [oid for k, oid in frontier if k == kind]
            if not ids:
                continue
            await reader.ensure(kind, ids)
            for oid in ids:
                for child_kind, child in children(kind, _load(reader, kind, oid)):
                    if child not in seen:
                        seen.add(child)
                        level.append((child_kind, child))
        frontier = level
    return seen
