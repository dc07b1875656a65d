"""Diff and walk Merkle trees, visiting only the subtrees whose ids differ.

Because a directory's id summarizes everything below it, two trees with equal ids are
equal all the way down: the diff never loads them. Comparing two snapshots of a
folder where one file changed loads one tree per directory level on the path to it.
Both walks keep their pending levels on an explicit stack, never the call stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .objects import ObjectId, Tree, TreeEntry

__all__ = ["Difference", "diff_trees", "join", "walk_tree"]

TreeLoader = Callable[[ObjectId], Tree]


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


@dataclass(frozen=True, slots=True)
class Difference:
    """One path that differs: ``old`` None means added, ``new`` None means deleted."""

    path: str
    old: TreeEntry | None
    new: TreeEntry | None

    @property
    def change(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "deleted"
        return "modified"


def diff_trees(
    old: ObjectId | None, new: ObjectId | None, load: TreeLoader, prefix: str = ""
) -> Iterator[Difference]:
    """Every entry that differs between two trees (None is the empty tree).

    Directories present on both sides are descended into, not reported; a directory
    added or deleted as a whole is reported once, with its entry. The order is that of
    a depth-first walk by name; pending levels wait on an explicit stack, so a tree of
    any depth is diffed without recursion.
    """
    stack = [_diff_level(old, new, load, prefix)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, Difference):
            yield item
        else:
            sub_old, sub_new, path = item
            stack.append(_diff_level(sub_old, sub_new, load, path))


def _diff_level(
    old: ObjectId | None, new: ObjectId | None, load: TreeLoader, prefix: str
) -> Iterator[Difference | tuple[ObjectId | None, ObjectId | None, str]]:
    """One directory's differences, with ``(old, new, path)`` in place of each
    subdirectory present on both sides (for the caller to descend into), by name."""
    if old == new:
        return
    old_entries = load(old).by_name() if old is not None else {}
    new_entries = load(new).by_name() if new is not None else {}
    for name in sorted(old_entries.keys() | new_entries.keys()):
        a, b = old_entries.get(name), new_entries.get(name)
        path = join(prefix, name)
        if a == b:
            continue
        if a is not None and b is not None and a.kind == b.kind == "dir":
            yield a.id, b.id, path
        else:
            yield Difference(path, a, b)


def walk_tree(
    root: ObjectId, load: TreeLoader, prefix: str = ""
) -> Iterator[tuple[str, TreeEntry]]:
    """Every (path, entry) below a tree, parents before children (depth first, in
    entry order, with an explicit stack: any depth works)."""
    stack: list[tuple[str, Iterator[TreeEntry]]] = [(prefix, iter(load(root).entries))]
    while stack:
        parent, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        path = join(parent, entry.name)
        yield path, entry
        if entry.kind == "dir" and entry.id is not None:
            stack.append((path, iter(load(entry.id).entries)))
