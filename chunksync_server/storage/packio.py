"""Durable writes for the pack store: appending blobs with few syscalls, and the group
commit that makes appended batches durable (one pack sync) and then visible (one
index transaction) for every batch queued meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import StorageError, storage_error

__all__ = [
    "INSERT",
    "GroupCommit",
    "Job",
    "Row",
    "append_rows",
    "ensure_dir",
    "fsync_dir",
    "raise_failed",
    "transact",
    "write_all",
]

INSERT = "INSERT OR IGNORE INTO objects VALUES (?, ?, ?, ?, ?, ?)"
RESOLVE = "DELETE FROM quarantine WHERE ns = ? AND oid = ?"  # see heal.py
_IOV_MAX = 1024  # buffers per pwritev call (Linux IOV_MAX)

#: an index row: ns, oid, pack number, offset, length, digest
Row = tuple[str, bytes, int, int, int, bytes]


@dataclass(slots=True, eq=False)
class Job:
    """One batch's appended blobs, waiting for the group commit to make them visible."""

    rows: list[Row]
    fds: set[int]
    done: threading.Event = field(default_factory=threading.Event)
    error: StorageError | None = None


class GroupCommit:
    """Make appended jobs durable, then visible: one pack sync and one transaction per group.

    The first thread to arrive becomes the leader and commits everything queued; threads
    arriving meanwhile queue up and are committed together by the next leader.
    """

    def __init__(self, db: sqlite3.Connection, db_lock: threading.Lock) -> None:
        self._db = db
        self._db_lock = db_lock
        self._cond = threading.Condition()
        self._queue: list[Job] = []
        self._busy = False

    def commit(self, job: Job) -> None:
        with self._cond:
            self._queue.append(job)
            while not job.done.is_set():
                if self._busy:
                    self._cond.wait()
                    continue
                group, self._queue = self._queue, []
                self._busy = True
                self._cond.release()
                error: StorageError | None = StorageError("object store commit interrupted")
                try:
                    error = self._flush(group)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    for queued in group:
                        queued.error = error
                        queued.done.set()
                    self._cond.notify_all()
        raise_failed(job)

    def _flush(self, group: list[Job]) -> StorageError | None:
        try:
            sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
            for fd in {fd for job in group for fd in job.fds}:
                sync(fd)
            rows = [row for job in group for row in job.rows]
            resolved = [(row[0], row[1]) for row in rows]

            def index(db: sqlite3.Connection) -> None:
                db.executemany(INSERT, rows)
                db.executemany(RESOLVE, resolved)  # stored again: no longer quarantined

            with self._db_lock:
                transact(self._db, index)
        except (OSError, sqlite3.Error) as exc:
            return storage_error(exc, "object store write failed")
        return None


def raise_failed(job: Job) -> None:
    """Raise the job's failure (a fresh instance per waiting thread) if it failed."""
    if job.error is not None:
        raise type(job.error)(job.error.message)


def transact(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run ``work`` in one write transaction (the caller holds the db lock)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    return result


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` and missing parents, each entry made durable in its parent."""
    if path.is_dir():
        return
    ensure_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    fsync_dir(path.parent)


def append_rows(
    fd: int, ns: str, pack: int, start: int, fresh: dict[bytes, bytes], digests: dict[bytes, bytes]
) -> list[Row]:
    """Write ``fresh`` back to back at ``start`` of a pack; the index rows to commit.

    A failed write is cut off again (best effort), so the next append starts clean.
    """
    rows: list[Row] = []
    offset = start
    for oid, blob in fresh.items():
        rows.append((ns, oid, pack, offset, len(blob), digests[oid]))
        offset += len(blob)
    try:
        write_all(fd, list(fresh.values()), start)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise storage_error(exc, "object store write failed") from exc
    return rows


def write_all(fd: int, blobs: Sequence[bytes], offset: int) -> None:
    """Write ``blobs`` back to back at ``offset`` with as few syscalls as possible."""
    for start in range(0, len(blobs), _IOV_MAX):
        group = blobs[start : start + _IOV_MAX]
        size = sum(len(blob) for blob in group)
        written = os.pwritev(fd, group, offset)
        rest = memoryview(b"".join(group))[written:] if written < size else memoryview(b"")
        while rest:
            n = os.pwrite(fd, rest, offset + written)
            written, rest = written + n, rest[n:]
        offset += size
