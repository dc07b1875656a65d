"""The stat rows a scan compares the disk with, read as far as the scan reaches.

A full scan needs every row (each file is compared, and a row without a file is
deleted), so it reads them all at once. A daemon's scan of a few dirty directories read
them all too — 20,000 rows decoded on every save, ~20% of a propagation's CPU in a
20,000-file folder. :class:`ScanStates` instead looks rows up one path at a time, and for
the deletions pass offers only the rows of the directories the scan listed (what their
previous listings held): a row under a directory taken from its cached tree describes an
unchanged file.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping

from .objects import ObjectId, TreeEntry
from .storage.index import FileState, Index
from .treecache import TREES

__all__ = ["ScanStates"]


class ScanStates:
    def __init__(self, index: Index, dirty: Collection[str] | None) -> None:
        self.index = index
        self._all = {s.path: s for s in index.iter_states()} if dirty is None else None
        self._seen: dict[str, FileState | None] = {}

    def get(self, path: str) -> FileState | None:
        if self._all is not None:
            return self._all.get(path)
        if path not in self._seen:
            self._seen[path] = self.index.get_state(path)
        return self._seen[path]

    def candidates(
        self, listed: Iterable[str], old_trees: Mapping[str, ObjectId], now: Mapping[str, TreeEntry]
    ) -> Iterable[str]:
        """Paths of rows that may have lost their file: all of them for a full scan. Else,
        per listed directory, the files its previous listing (``old_trees``) held, and
        every row below a subdirectory that is no longer one (``now``: this scan's
        entries); a directory without a previous listing is read by prefix. A row the
        previous listing did not name is left to the next full scan (start, hourly)."""
        if self._all is not None:
            return self._all.keys()
        paths: set[str] = set()
        for rel in listed:
            old_id = old_trees.get(rel)
            tree = None if old_id is None else TREES.load(old_id, self.index.get_object)
            if tree is None:
                paths.update(self._below(rel))
                continue
            for entry in tree.entries:
                child = f"{rel}/{entry.name}" if rel else entry.name
                if entry.kind == "dir":
                    if child not in now or now[child].kind != "dir":
                        paths.update(self._below(child))
                else:
                    paths.add(child)
        return paths

    def _below(self, rel: str) -> Iterator[str]:
        return (s.path for s in self.index.iter_states(rel + "/" if rel else ""))
