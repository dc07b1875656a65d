"""Giving the space of deleted objects back: pack compaction, and a namespace's space use.

Deleting an object (``delete_many``, the prune's sweep) removes its index row only; its
bytes stay in their pack as dead space. :func:`compact` rewrites every pack of a
namespace whose dead share reaches ``threshold`` (borg ``compact``, restic ``prune``):

1. the pack being appended to is closed first (the next append starts a new one), so
   nothing is written into a pack while it is rewritten;
2. its live objects are read (each one checked against its digest, as every read is)
   and appended to the current pack, which is then ``fdatasync``'d;
3. one index transaction points every moved row at its new place — only rows that
   still point into the old pack move, so a concurrent quarantine is never undone;
4. the old pack is unlinked (and its directory synced).

Why it is crash-safe: before step 3 commits, the copies are an unindexed tail that the
start-up reconcile cuts off (:func:`.heal.reconcile`) and the old pack still serves
every object; after it, the old pack holds no indexed object and the reconcile cuts it
to nothing if step 4 did not happen. No index row ever points at bytes that are not
durable. A reader that picked the old row just before step 3 finds the pack gone (or
its descriptor retired) and the store re-reads the row (``PackObjectStore._verified``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .packfiles import pack_number
from .packio import append_rows, fsync_dir, transact

if TYPE_CHECKING:
    from .packs import PackObjectStore

__all__ = ["CompactResult", "SpaceUse", "compact", "space_use"]

#: rewrite a pack once this share of its bytes is dead
THRESHOLD = 0.5
BATCH_BYTES = 16 * 1024 * 1024  # live bytes copied per step (memory bound, lock hold time)
_MOVE = (
    "UPDATE objects SET pack = ?, offset = ? WHERE ns = ? AND oid = ? AND pack = ? AND offset = ?"
)


def _move_rows(conn: sqlite3.Connection, rows: Sequence[Sequence[object]]) -> None:
    conn.executemany(_MOVE, rows)


@dataclass(frozen=True, slots=True)
class SpaceUse:
    """``packed``: bytes of the namespace's pack files; ``live``: bytes of the indexed
    objects in them. The difference is dead space a compaction can give back."""

    packed: int
    live: int

    @property
    def dead(self) -> int:
        return max(0, self.packed - self.live)


@dataclass(frozen=True, slots=True)
class CompactResult:
    packs_rewritten: int
    objects_moved: int
    bytes_freed: int


def space_use(store: PackObjectStore, ns: str) -> SpaceUse:
    """Pack bytes on disk against indexed bytes (works from a read-only view too)."""
    packs = store.root / ns / "packs"
    packed = 0
    if packs.is_dir():
        for path in packs.iterdir():
            if pack_number(path) is not None:
                with contextlib.suppress(FileNotFoundError):
                    packed += path.stat().st_size
    live = store.stats(ns).bytes
    return SpaceUse(packed=packed, live=live)


def _pack_sizes(store: PackObjectStore, ns: str) -> dict[int, int]:
    packs = store.root / ns / "packs"
    sizes: dict[int, int] = {}
    if packs.is_dir():
        for path in packs.iterdir():
            number = pack_number(path)
            if number is not None:
                with contextlib.suppress(FileNotFoundError):
                    sizes[number] = path.stat().st_size
    return sizes


def compact(store: PackObjectStore, ns: str, threshold: float = THRESHOLD) -> CompactResult:
    """Rewrite the namespace's packs that are at least ``threshold`` dead (writer only)."""
    db = store._writer_db()
    space = store._space(ns)
    reader = store._reader()
    live = dict(
        reader.execute(
            "SELECT pack, SUM(length) FROM objects WHERE ns = ? GROUP BY pack", (ns,)
        ).fetchall()
    )
    sizes = _pack_sizes(store, ns)
    doomed = sorted(
        pack
        for pack, size in sizes.items()
        if size > 0 and (size - live.get(pack, 0)) >= threshold * size
    )
    rewritten = moved = freed = 0
    for pack in doomed:
        count = _rewrite(store, db, space, ns, pack)
        if count is None:
            continue
        rewritten, moved = rewritten + 1, moved + count
        freed += sizes[pack] - live.get(pack, 0)
    return CompactResult(rewritten, moved, freed)


def _batches(rows: list[Any], limit: int) -> list[list[Any]]:
    out: list[list[Any]] = [[]]
    size = 0
    for row in rows:
        if out[-1] and size + row[3] > limit:
            out.append([])
            size = 0
        out[-1].append(row)
        size += row[3]
    return out


def _rewrite(
    store: PackObjectStore, db: sqlite3.Connection, space: Any, ns: str, pack: int
) -> int | None:
    """Move the live objects of one pack to the append pack, then unlink it."""
    with space.lock:
        if space.pack == pack:  # never rewrite the pack being appended to: close it
            space.pack, space.end = space.pack + 1, 0
    rows = (
        store._reader()
        .execute(
            "SELECT oid, pack, offset, length, digest FROM objects WHERE ns = ? AND pack = ?"
            " ORDER BY offset",
            (ns, pack),
        )
        .fetchall()
    )
    moved = 0
    for batch in _batches(rows, BATCH_BYTES):
        blobs = store._verified(ns, batch)  # a damaged one is quarantined, not copied
        if not blobs:
            continue
        sources = {row[0]: row[2] for row in batch}
        digests = {row[0]: row[4] for row in batch}
        size = sum(map(len, blobs.values()))
        with space.lock:
            if space.end and space.end + size > store._pack_size:
                space.pack, space.end = space.pack + 1, 0
            fd = store._files.append_fd(ns, space.pack)
            new_rows = append_rows(fd, ns, space.pack, space.end, blobs, digests)
            getattr(os, "fdatasync", os.fsync)(fd)  # durable before any row points at it
            space.end += size
            updates = [(r[2], r[3], ns, r[1], pack, sources[r[1]]) for r in new_rows]
            with store._db_lock:
                transact(db, functools.partial(_move_rows, rows=updates))
        moved += len(blobs)
    left = (
        store._reader()
        .execute("SELECT COUNT(*) FROM objects WHERE ns = ? AND pack = ?", (ns, pack))
        .fetchone()[0]
    )
    if left:  # an object could not be moved: keep the pack
        return None
    path = store._files.path(ns, pack)
    store._files.retire(ns, pack)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_dir(path.parent)
    return moved
