"""The stat rows a scan compares the disk with, read as far as the scan reaches.

A full scan needs every row (each file is compared, and a row without a file is
deleted), so it reads them all at once. A daemon's scan of a few dirty directories read
them all too — 20,000 rows decoded on every save, ~20% of a propagation's CPU in a
20,000-file folder. :class:`ScanStates` instead looks rows up one path at a time, and for
the deletions pass offers only the rows under the directories the scan listed: a row
under a directory taken from its cached tree describes an unchanged file.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from .storage.index import FileState, Index

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

    def candidates(self, listed: Iterable[str]) -> Iterable[str]:
        """Paths of rows that may have lost their file: all of them for a full scan, else
        those below a listed directory (the outermost ones: a prefix covers the rest)."""
        if self._all is not None:
            return self._all.keys()
        outer: list[str] = []
        for rel in sorted(listed):
            if not any(rel == o or rel.startswith(o + "/") or o == "" for o in outer):
                outer.append(rel)
        paths: set[str] = set()
        for rel in outer:
            paths.update(s.path for s in self.index.iter_states(rel + "/" if rel else ""))
        return paths
