"""A scan's picture of the folder, expanded only where someone looks.

An incremental scan lists the dirty directories (and their ancestors) and takes every
other directory whole from its cached tree. Recording each entry below those clean
trees cost the whole folder on every save (20,000 entries walked to report one edit), so
:class:`ScanEntries` keeps them as they are — the clean trees' ids — and looks a path
up through them only when asked (one listing per directory level below the clean
root). Iterating, ``len`` and ``values`` expand everything once (tests, reports): that
costs what it always did, but no step of a sync round asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from .objects import ObjectId, Tree, TreeEntry
from .treediff import walk_tree

__all__ = ["ScanEntries"]


class ScanEntries(Mapping[str, TreeEntry]):
    """relative POSIX NFC path -> entry, for every path of the folder but the root.

    ``listed`` holds the entries of the directories built by this scan; ``clean`` maps
    each directory taken whole from its cached tree to that tree's id (no clean
    directory lies below another). ``load`` reads a tree, raising KeyError if absent.
    """

    def __init__(
        self,
        listed: dict[str, TreeEntry],
        clean: dict[str, ObjectId],
        load: Callable[[ObjectId], Tree],
    ) -> None:
        self._listed = listed
        self._clean = clean
        self._load = load
        self._all: dict[str, TreeEntry] | None = None if clean else listed

    def __getitem__(self, path: str) -> TreeEntry:
        found = self._listed.get(path)
        if found is not None:
            return found
        if self._all is not None:
            return self._all[path]
        parts = path.split("/")
        for depth in range(len(parts) - 1, -1, -1):  # the clean directory above ``path``
            tree_id = self._clean.get("/".join(parts[:depth]))
            if tree_id is not None:
                return self._lookup(tree_id, parts[depth:], path)
        raise KeyError(path)

    def _lookup(self, tree_id: ObjectId, names: list[str], path: str) -> TreeEntry:
        tree = self._load(tree_id)
        for i, name in enumerate(names):
            entry = tree.get(name)
            if entry is None:
                raise KeyError(path)
            if i == len(names) - 1:
                return entry
            if entry.kind != "dir" or entry.id is None:
                raise KeyError(path)
            tree = self._load(entry.id)
        raise KeyError(path)

    def expanded(self) -> dict[str, TreeEntry]:
        """Every entry, the clean trees walked (once)."""
        if self._all is None:
            full = dict(self._listed)
            for rel, tree_id in self._clean.items():
                full.update(walk_tree(tree_id, self._load, rel))
            self._all = full
        return self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self.expanded())

    def __len__(self) -> int:
        return len(self.expanded())
