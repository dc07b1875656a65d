"""Failed items: every path that cannot be synced, with the reason and what to do.

A folder that is "idle" while some files never reach the other devices breaks the trust
of a user who set the daemon up once and forgot it. So nothing is skipped silently:
each path the scanner or the engine cannot sync becomes a :class:`FailedItem` —
an unreadable file or directory, a name that is not UTF-8, one of two names that differ
only by Unicode normalization, a fifo or socket, a file that vanished or kept changing
while it was read, a server entry this platform cannot create. Names that sync here but
that Windows or macOS cannot hold are listed too (kind ``unportable``) without counting as
skipped.

The list is persisted in the index (meta key :data:`META_KEY`, JSON) after every scan, so
``status`` shows it for a running daemon and for a stopped folder alike. :func:`merge`
(pure) decides what a scan replaces: an item is re-judged when its directory was listed
again, dropped when its directory is gone, and kept otherwise (a watcher-driven scan
lists only dirty directories), so an item clears itself once the path is fixed. ``since``
survives re-judging, so the daemon logs an item once, when it appears, and once more
when it clears.

A one-shot ``sync`` that leaves items skipped exits with :data:`EXIT_SKIPPED`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .errors import EXIT_SKIPPED
from .storage.index import Index

__all__ = ["EXIT_SKIPPED", "HINTS", "META_KEY", "FailedItem", "Recorded", "load", "merge", "record"]

META_KEY = "failed_items"

#: kind -> what the user can do about it
HINTS: dict[str, str] = {
    "unreadable": "give your user read access (chmod u+r), or add it to .chunksyncignore",
    "not-utf8": "rename it to a UTF-8 name (e.g. with convmv); no other device could show it",
    "nfc-twin": "rename one of them: other devices (and macOS) see the two names as one",
    "special": "fifos, sockets and device files are never synced; add it to .chunksyncignore",
    "vanished": "it was deleted or replaced while being read; it syncs at the next scan if it is back",
    "being-written": "it kept changing while being read; it syncs once it is left alone",
    "unwritable-here": "this device cannot create that name; it stays on the server for the "
    "others: rename it on a device that has it to get it here",
    "unportable": "it syncs, but Windows or macOS devices cannot create it: rename it to reach every device",
}
#: kinds that are listed but do not make the path unsynced here
NOT_SKIPPED = frozenset({"unportable"})
REMOTE_KINDS = frozenset({"unwritable-here"})


@dataclass(frozen=True, slots=True)
class FailedItem:
    """One path that cannot be synced (``path`` is folder-relative and exact: a name that is
    not UTF-8 keeps its bytes as lone surrogates; every output escapes it, chunksync.output)."""

    path: str
    kind: str
    reason: str
    hint: str = ""
    since: int = 0  # time (ns) the item was first seen

    @classmethod
    def of(cls, kind: str, path: str, reason: str) -> FailedItem:
        """A new item, first seen now."""
        return cls(path, kind, reason, HINTS.get(kind, ""), time.time_ns())

    @property
    def skipped(self) -> bool:
        return self.kind not in NOT_SKIPPED

    @property
    def key(self) -> tuple[str, str]:
        return self.path, self.kind

    def describe(self) -> str:
        return f"{self.path}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FailedItem:
        return cls(
            str(doc["path"]),
            str(doc["kind"]),
            str(doc["reason"]),
            str(doc.get("hint", "")),
            int(doc.get("since", 0)),
        )


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def merge(
    previous: Iterable[FailedItem],
    scanned: Iterable[FailedItem] | None = None,
    listed: frozenset[str] | set[str] = frozenset(),
    present: Iterable[str] | None = None,
    remote: Iterable[FailedItem] | None = None,
    held: frozenset[str] | set[str] = frozenset(),
) -> list[FailedItem]:
    """The failed items after a scan (pure).

    ``scanned``: what this scan found, ``listed``: the directories it listed from disk,
    ``present``: every directory in the scanned tree (None: no scan). ``remote``: the server
    entries the round skipped (None: no round got that far; the previous ones stay).
    ``held``: paths the scan did not judge (held back while still being written): their
    items stay as they were. Earlier ``since`` values are kept for items still failing."""
    old = list(previous)
    out: dict[tuple[str, str], FailedItem] = {}
    if scanned is None:
        out.update((i.key, i) for i in old if i.kind not in REMOTE_KINDS)
    else:
        shown = set(listed) if old else set()
        there = set(present or ()) if old else set()
        for item in old:
            parent = _parent(item.path)
            if item.kind in REMOTE_KINDS or (parent in shown and item.path not in held):
                continue  # re-judged by this scan
            if parent == "" or parent in there:
                out[item.key] = item
        out.update((i.key, i) for i in scanned)
    if remote is None:
        out.update((i.key, i) for i in old if i.kind in REMOTE_KINDS)
    else:
        out.update((i.key, i) for i in remote)
    since = {i.key: i.since for i in old}
    merged = [
        FailedItem(i.path, i.kind, i.reason, i.hint, since.get(i.key, i.since))
        for i in out.values()
    ]
    return sorted(merged, key=lambda i: (i.path, i.kind))


def _is_dir(entry: object) -> bool:
    return getattr(entry, "kind", None) == "dir"


def load(index: Index) -> list[FailedItem]:
    raw = index.get_meta(META_KEY)
    if not raw:
        return []
    try:
        return [FailedItem.from_json(doc) for doc in json.loads(raw)]
    except (ValueError, KeyError, TypeError):
        return []  # a garbled list is rebuilt by the next full scan


@dataclass(frozen=True, slots=True)
class Recorded:
    """The list after a scan, and how it changed (for logging each item once)."""

    items: tuple[FailedItem, ...]
    new: tuple[FailedItem, ...]
    cleared: tuple[FailedItem, ...]

    @property
    def skipped(self) -> int:
        return sum(1 for i in self.items if i.skipped)


def record(
    index: Index,
    scan: Any | None = None,
    remote: Iterable[tuple[str, str]] | None = None,
) -> Recorded:
    """Merge a :class:`~chunksync.scanner.ScanResult` (and a round's skipped server
    entries, ``(path, reason)``) into the persisted list; returns what changed."""
    before = load(index)
    scanned = listed = present = None
    held: set[str] = set()
    if scan is not None:
        held = set(scan.settling)
        scanned = list(getattr(scan, "failed", ()))
        scanned += [
            FailedItem.of("being-written", p, "kept changing while being read; not synced yet")
            for p in scan.requeued
        ]
        listed = scan.listed
        # only the parents of recorded items are asked about: looked up, not the whole
        # folder walked (entries below clean directories are read on demand)
        parents = {_parent(i.path) for i in before}
        present = [p for p in parents if p and _is_dir(scan.entries.get(p))]
    remote_items = (
        None
        if remote is None
        else [FailedItem.of("unwritable-here", path, reason) for path, reason in remote]
    )
    items = merge(before, scanned, listed or frozenset(), present, remote_items, held)
    if [i.to_json() for i in items] != [i.to_json() for i in before]:
        with index.write() as w:
            w.set_meta(META_KEY, json.dumps([i.to_json() for i in items]).encode())
    old_keys, new_keys = {i.key for i in before}, {i.key for i in items}
    return Recorded(
        tuple(items),
        tuple(i for i in items if i.key not in old_keys),
        tuple(i for i in before if i.key not in new_keys),
    )
