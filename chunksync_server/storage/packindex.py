"""The SQLite object index of the pack store: its schema, and the read side.

``objects(ns, oid, pack, offset, length, digest)`` says where every visible object is;
``quarantine`` (see :mod:`.heal`) keeps the rows of damaged ones. The writer migrates
the schema when it takes the writer lock (:func:`migrate`). Reads go through
:class:`IndexReaders`: one connection per thread, in WAL mode, so a read never blocks
the writer and no read transaction stays open between calls.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import heal
from .base import StorageError

__all__ = ["INDEX_FILE", "SCHEMA_VERSION", "IndexReaders", "connect", "migrate"]

INDEX_FILE = "index.sqlite"
SCHEMA_VERSION = 2  # 2: the quarantine table (heal.py)
_SQL_CHUNK = 30_000  # bound parameters per IN (...) query (SQLite allows 32,766)
_LIST_PAGE = 10_000

_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS objects (ns TEXT NOT NULL, oid BLOB NOT NULL,"
        " pack INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,"
        " digest BLOB NOT NULL, PRIMARY KEY (ns, oid)) WITHOUT ROWID"
    ),
    "CREATE INDEX IF NOT EXISTS objects_extent ON objects (ns, pack, offset)",
    heal.QUARANTINE_SCHEMA,
)


def connect(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(
        root / INDEX_FILE, isolation_level=None, check_same_thread=False, timeout=30.0
    )


def migrate(db: sqlite3.Connection, root: Path) -> None:
    """Bring the index to :data:`SCHEMA_VERSION` (writer only; idempotent)."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StorageError(f"object index {root / INDEX_FILE} is from a newer version")
    for statement in _SCHEMA:
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class IndexReaders:
    """Per-thread read connections to the index, closed together."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._closed = False

    def get(self) -> sqlite3.Connection:
        """This thread's read connection (WAL: never blocks the writer)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if self._closed:
                    raise StorageError("object store is closed")
                try:
                    conn = connect(self.root)
                except sqlite3.Error as exc:
                    raise StorageError(f"cannot open object index: {exc}") from exc
                self._all.append(conn)
            self._local.conn = conn
        elif self._closed:
            raise StorageError("object store is closed")
        return conn

    def select_in(self, columns: str, ns: str, oids: Sequence[bytes]) -> Iterator[Any]:
        """Index rows of those ``oids`` present in ``ns``, in chunks of bound parameters."""
        for start in range(0, len(oids), _SQL_CHUNK):
            chunk = oids[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            # B608: constant SQL, values bound as ?
            query = f"SELECT {columns} FROM objects WHERE ns = ? AND oid IN ({marks})"  # nosec B608
            yield from self.get().execute(query, (ns, *chunk))

    def iter_ids(self, ns: str) -> Iterator[bytes]:
        """Page through the ids by key, so no read transaction stays open between pages."""
        last = b""
        while True:
            try:
                page = [
                    row[0]
                    for row in self.get().execute(
                        "SELECT oid FROM objects WHERE ns = ? AND oid > ? ORDER BY oid LIMIT ?",
                        (ns, last, _LIST_PAGE),
                    )
                ]
            except sqlite3.Error as exc:
                raise StorageError(f"object store failed: {exc}") from exc
            yield from page
            if len(page) < _LIST_PAGE:
                return
            last = page[-1]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()
