"""Self-healing of the pack store: damaged objects are quarantined, never served.

An object is *damaged* when its bytes no longer match the digest recorded when it was
stored (a flipped bit) or are no longer there (a pack cut short, a pack file gone).
Serving it would hand every client a blob that fails authentication, and keeping its
index row would make ``missing`` say "stored" forever, so a client could never repair
it. Quarantine moves the row from ``objects`` to ``quarantine``: the object then reads
as missing, a client's re-upload is accepted as new, and storing it again clears the
quarantine row (in the same transaction as the new index row).

Where damage is found: on every read (``get``, ``get_many``, and the stored copy of a
re-uploaded id), by ``check`` (``repair=True`` quarantines what it finds), and at start-up
by :func:`reconcile`, which lines pack files up with the index in both directions.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from chunksync.wire import blob_digest

from .base import NAMESPACE, Damage, StorageError
from .packfiles import PackGone
from .packio import transact

__all__ = [
    "QUARANTINE_SCHEMA",
    "Damage",
    "Reader",
    "indexed_end",
    "inspect",
    "log_damage",
    "pending_lines",
    "quarantine",
    "reconcile",
    "scan",
]

log = logging.getLogger("chunksync_server.storage")  # the same logger as MemoryObjectStore

QUARANTINE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS quarantine (ns TEXT NOT NULL, oid BLOB NOT NULL,"
    " pack INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,"
    " digest BLOB NOT NULL, reason TEXT NOT NULL, time REAL NOT NULL,"
    " PRIMARY KEY (ns, oid)) WITHOUT ROWID"
)
_UNLINK = "DELETE FROM objects WHERE ns = ? AND oid = ? AND pack = ? AND offset = ?"
_KEEP = "INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


#: reads (ns, pack, offset, length) from the packs; raises PackGone when the bytes are gone
Reader = Callable[[str, int, int, int], bytes]


def inspect(ns: str, row: tuple[bytes, int, int, int, bytes], read: Reader) -> bytes | Damage:
    """The blob of one (oid, pack, offset, length, digest) index row, or its Damage.

    Other I/O errors (StorageError) propagate: a disk that cannot be read right now is
    not proof that the object is gone.
    """
    oid, pack, offset, length, digest = row
    try:
        blob = read(ns, pack, offset, length)
    except PackGone as exc:
        return Damage(ns, oid, pack, offset, length, digest, f"unreadable: {exc}")
    if blob_digest(blob) != digest:
        reason = f"digest mismatch in pack {pack} at offset {offset}"
        return Damage(ns, oid, pack, offset, length, digest, reason)
    return blob


def scan(
    rows: Iterable[tuple[str, bytes, int, int, int, bytes]], read: Reader
) -> tuple[list[str], list[Damage]]:
    """Re-verify index rows ordered by (ns, pack, offset), for ``check``.

    Returns the problems that are not object damage (overlapping extents, I/O errors)
    and the damaged objects, separately: only the latter may be quarantined.
    """
    problems: list[str] = []
    damages: list[Damage] = []
    extent: tuple[str, int] | None = None
    extent_end = 0
    for ns, oid, pack, offset, length, digest in rows:
        if extent != (ns, pack):
            extent, extent_end = (ns, pack), 0
        if offset < extent_end:
            problems.append(f"{ns}/{oid.hex()}: overlaps the previous object in pack {pack}")
        extent_end = max(extent_end, offset + length)
        try:
            found = inspect(ns, (oid, pack, offset, length, digest), read)
        except StorageError as exc:
            problems.append(f"{ns}/{oid.hex()}: unreadable: {exc}")
            continue
        if isinstance(found, Damage):
            damages.append(found)
    return problems, damages


def log_damage(damage: Damage, action: str) -> None:
    log.warning("object %s is damaged (%s); %s", damage.name, damage.reason, action)


def quarantine(db: sqlite3.Connection, damages: Iterable[Damage]) -> list[Damage]:
    """Move the damaged rows out of ``objects`` (caller: writer, in a transaction).

    A row is moved only if it still points where the damage was seen, so a good copy
    stored meanwhile is never quarantined by a stale finding. Returns the rows moved.
    """
    moved = []
    now = time.time()
    for d in damages:
        if db.execute(_UNLINK, (d.ns, d.oid, d.pack, d.offset)).rowcount:
            db.execute(_KEEP, (d.ns, d.oid, d.pack, d.offset, d.length, d.digest, d.reason, now))
            moved.append(d)
    return moved


def pending_lines(conn: sqlite3.Connection, ns: str | None = None) -> list[str]:
    """One ``check`` line per quarantined object no client has uploaded again yet."""
    where, args = ("WHERE ns = ?", (ns,)) if ns is not None else ("", ())
    try:
        rows = conn.execute(
            f"SELECT ns, oid, reason FROM quarantine {where} ORDER BY ns, oid",  # nosec B608  # constant SQL, values bound as ?
            args,
        ).fetchall()
    except sqlite3.OperationalError:  # an index no writer has migrated yet: none
        return []
    return [
        f"{space}/{oid.hex()}: quarantined ({reason}); waiting for a client to upload it again"
        for space, oid, reason in rows
    ]


def reconcile(db: sqlite3.Connection, root: Path) -> list[Damage]:
    """Line every pack up with the index (writer only, at open); returns what it quarantined.

    * a pack longer than its indexed extent lost a crash's unindexed tail: cut it off;
    * a pack shorter than its indexed extent (or gone) lost objects: their rows are
      quarantined and the pack is cut back to the end of its last intact object, so the
      next append goes at the real end and never inside an indexed object.
    """
    damaged: list[Damage] = []
    for ns in sorted(_namespaces(db, root)):
        files = _pack_files(root / ns / "packs")
        row = db.execute("SELECT MAX(pack) FROM objects WHERE ns = ?", (ns,)).fetchone()
        last = max([*files, row[0] if row[0] is not None else -1])
        for pack in range(last + 1):
            path = files.get(pack)
            size = path.stat().st_size if path is not None else 0
            end = indexed_end(db, ns, pack)
            if size < end:
                reason = (
                    f"unreadable: pack {pack} is {size} bytes, the object ends past it"
                    if path is not None
                    else f"unreadable: pack {pack} is gone"
                )
                lost = quarantine_past(db, ns, pack, size, reason)
                for d in lost:
                    log_damage(d, "quarantined at start-up until a client uploads it again")
                damaged.extend(lost)
                end = indexed_end(db, ns, pack)
            if path is not None and size > end:
                with open(path, "r+b") as handle:
                    handle.truncate(end)
                    os.fsync(handle.fileno())
    return damaged


def quarantine_past(
    db: sqlite3.Connection, ns: str, pack: int, size: int, reason: str
) -> list[Damage]:
    """Quarantine the rows of one pack that end past ``size`` bytes (one transaction)."""
    rows = db.execute(
        "SELECT oid, offset, length, digest FROM objects"
        " WHERE ns = ? AND pack = ? AND offset + length > ?",
        (ns, pack, size),
    ).fetchall()
    damages = [
        Damage(ns, oid, pack, off, size_, digest, reason) for oid, off, size_, digest in rows
    ]
    moved: list[Damage] = transact(db, lambda conn: quarantine(conn, damages))
    return moved


def indexed_end(db: sqlite3.Connection, ns: str, pack: int) -> int:
    """The end of the last indexed object of a pack (0 when it has none)."""
    row = db.execute(
        "SELECT offset + length FROM objects WHERE ns = ? AND pack = ?"
        " ORDER BY offset DESC LIMIT 1",
        (ns, pack),
    ).fetchone()
    return int(row[0]) if row else 0


def _pack_files(packs: Path) -> dict[int, Path]:
    if not packs.is_dir():
        return {}
    return {int(p.stem): p for p in packs.glob("*.pack") if p.stem.isdigit()}


def _namespaces(db: sqlite3.Connection, root: Path) -> set[str]:
    """Namespaces with a directory or index rows (a skip-scan, not a full index scan)."""
    found = {p.name for p in root.iterdir() if p.is_dir() and NAMESPACE.match(p.name)}
    rows = db.execute(
        "WITH RECURSIVE n(ns) AS (SELECT MIN(ns) FROM objects UNION ALL"
        " SELECT (SELECT MIN(ns) FROM objects WHERE ns > n.ns) FROM n WHERE n.ns IS NOT NULL)"
        " SELECT ns FROM n WHERE ns IS NOT NULL"
    )
    found.update(row[0] for row in rows)
    return found
