"""Counting deletions for the mass-delete guard (:mod:`chunksync.sync.engine`).

Only deletions count: an edit keeps its path and a move keeps its content, so neither
trips the guard however many files it touches. Both functions diff only the subtrees
that differ.
"""

from __future__ import annotations

from collections.abc import Callable

from ..objects import ObjectId, Tree, TreeEntry
from ..treediff import diff_trees, walk_tree

__all__ = ["count_files", "deleted_files"]


def _files_below(
    path: str, entry: TreeEntry | None, load: Callable[[ObjectId], Tree]
) -> list[tuple[str, ObjectId]]:
    if entry is None or entry.id is None:
        return []
    if entry.kind == "file":
        return [(path, entry.id)]
    if entry.kind == "dir":
        return [
            (f"{path}/{p}", e.id) for p, e in walk_tree(entry.id, load) if e.kind == "file" and e.id
        ]
    return []


def deleted_files(old: ObjectId | None, new: ObjectId, load: Callable[[ObjectId], Tree]) -> int:
    """How many files of ``old`` are deleted in ``new``: their path holds no file any
    more and their content is found nowhere among what ``new`` changed (diffing only the
    subtrees that differ). An edit keeps its path and a move keeps its content, so
    neither counts."""
    gone: list[tuple[str, ObjectId]] = []
    kept: set[ObjectId] = set()
    for diff in diff_trees(old, new, load):
        now = _files_below(diff.path, diff.new, load)
        kept.update(oid for _, oid in now)
        still_there = {path for path, _ in now}
        gone.extend(f for f in _files_below(diff.path, diff.old, load) if f[0] not in still_there)
    return sum(1 for _, oid in gone if oid not in kept)


def count_files(root: ObjectId | None, load: Callable[[ObjectId], Tree]) -> int:
    return 0 if root is None else sum(1 for _, e in walk_tree(root, load) if e.kind == "file")
