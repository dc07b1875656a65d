"""Server metadata in SQLite (``DATA/meta.db``): accounts, folders, heads, audit.

Guarantees:

* **Durable and shared.** WAL journal, ``synchronous=FULL`` (every commit is fsynced)
  and a busy timeout, so the admin CLI can read and write while the server runs.
* **Serialized writers.** Every write runs in ``BEGIN IMMEDIATE``: the write lock is
  taken up front, so a read-modify-write (head compare-and-swap, audit chain append)
  can never interleave with another process's.
* **Versioned schema.** ``PRAGMA user_version`` records the schema version;
  :data:`MIGRATIONS` are applied in order, each in its own transaction, by
  ``chunksync-server migrate`` only (after a backup); opening an older or a newer
  database refuses with what to do (:func:`connect`).
* **No secrets at rest.** Passwords are stored as Argon2id PHC strings and tokens as
  SHA-256 hashes; the file is created 0600 in a 0700 directory.

:class:`MetaDB` owns one connection guarded by a lock; async code calls
:meth:`MetaDB.read` / :meth:`MetaDB.write` with a function of the connection, which
runs on a worker thread. This module also holds the folder, member, head and key-slot
queries; accounts live in :mod:`chunksync_server.auth` and the audit chain in :mod:`chunksync_server.audit`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from chunksync.errors import ConfigError

from . import audit
from .dbversion import has_tables, require_current, schema_version
from .pgdb import connect_pg, is_pg_url
from .schema_scaleout import SCALE_OUT_SCHEMA
from .sqldialect import split_script

__all__ = [
    "SCHEMA_VERSION",
    "FolderRow",
    "MetaDB",
    "connect",
    "transaction",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    # version 1
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        pw_hash TEXT NOT NULL,
        admin INTEGER NOT NULL DEFAULT 0,
        disabled INTEGER NOT NULL DEFAULT 0,
        totp_secret TEXT,
        created REAL NOT NULL
    );
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        created REAL NOT NULL,
        last_seen REAL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE tokens (
        hash BLOB PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        user_id INTEGER NOT NULL REFERENCES users(id),
        scope TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tokens_device ON tokens(device_id);
    CREATE TABLE folders (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        owner INTEGER NOT NULL REFERENCES users(id),
        created REAL NOT NULL
    );
    CREATE TABLE members (
        folder_id TEXT NOT NULL REFERENCES folders(id),
        user_id INTEGER NOT NULL REFERENCES users(id),
        role TEXT NOT NULL CHECK (role IN ('owner', 'read-write', 'read-only')),
        PRIMARY KEY (folder_id, user_id)
    );
    CREATE TABLE heads (
        folder_id TEXT PRIMARY KEY REFERENCES folders(id),
        head TEXT,
        seq INTEGER NOT NULL
    );
    CREATE TABLE head_log (
        folder_id TEXT NOT NULL REFERENCES folders(id),
        seq INTEGER NOT NULL,
        head TEXT NOT NULL,
        previous TEXT,
        time REAL NOT NULL,
        device TEXT NOT NULL,
        user TEXT NOT NULL,
        PRIMARY KEY (folder_id, seq)
    );
    CREATE TABLE keyslots (
        folder_id TEXT NOT NULL REFERENCES folders(id),
        name TEXT NOT NULL,
        blob BLOB NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (folder_id, name)
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        user TEXT,
        device TEXT,
        address TEXT,
        action TEXT NOT NULL,
        folder TEXT,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_folder ON audit(folder);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    """,
    # version 2: per-user storage quota in bytes over the folders the user owns
    """
    ALTER TABLE users ADD COLUMN quota_bytes INTEGER;
    """,
    # version 3: time step of the last accepted TOTP code (a code is usable once)
    """
    ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
    """,
    # version 4: a rotated token's predecessor, kept valid until the new one is first used
    """
    ALTER TABLE tokens ADD COLUMN successor_of BLOB;
    CREATE INDEX tokens_successor ON tokens(successor_of);
    """,
    # version 5 (scale out, issue 20): the S3 object store's index and quarantine, the
    # store a folder is pinned to (data residency), state shared by server processes
    SCALE_OUT_SCHEMA,
    # version 6: storage lifecycle (issue 16: forget, prune, purge; lifecycle_db.py):
    # forgotten snapshots, the heads each device was last shown (it may base on them),
    # the folder's stored retention policy and its last prune
    """
    CREATE TABLE forgotten (
        folder_id TEXT NOT NULL REFERENCES folders(id),
        head TEXT NOT NULL,
        time REAL NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (folder_id, head)
    );
    CREATE TABLE device_heads (
        folder_id TEXT NOT NULL REFERENCES folders(id),
        device_id TEXT NOT NULL,
        head TEXT NOT NULL,
        time REAL NOT NULL,
        PRIMARY KEY (folder_id, device_id, head)
    );
    CREATE TABLE retention (
        folder_id TEXT PRIMARY KEY REFERENCES folders(id),
        policy TEXT,
        last_prune TEXT
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (creating 0600 if needed) the metadata database: a SQLite file, created at the
    current schema when new, an older or newer one refused (:mod:`.dbversion`); or a
    ``postgresql://`` URL (a :class:`.pgdb.PgConnection`, same methods and SQL)."""
    if is_pg_url(path):
        return connect_pg(str(path), MIGRATIONS)  # type: ignore[return-value]
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = open_raw(path)
        try:
            version = schema_version(conn)
            if version == 0 and not has_tables(conn):
                upgrade(conn)
            else:
                require_current(version, SCHEMA_VERSION, path)
        except BaseException:
            conn.close()
            raise
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open metadata database {path}: {exc}") from exc
    return conn


def open_raw(path: Path) -> sqlite3.Connection:
    """A connection with the usual pragmas and no schema check (for ``migrate``)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def upgrade(conn: sqlite3.Connection) -> None:
    """Apply the pending :data:`MIGRATIONS` (the caller checked the version is not newer),
    each in its own transaction."""
    for number in range(schema_version(conn), SCHEMA_VERSION):
        with transaction(conn):
            if schema_version(conn) != number:
                continue  # another process migrated meanwhile
            for statement in split_script(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number + 1}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def anchor_audit(conn: sqlite3.Connection) -> None:
    """After a commit: record the audit chain head apart from the table (best effort:
    the write is already durable, a failure here only lets the head file lag)."""
    try:
        audit.anchor(conn)
    except (OSError, sqlite3.Error):
        log.exception("could not record the audit chain head")


class MetaDB:
    """One shared connection plus a lock; blocking work runs on worker threads."""

    __slots__ = ("_conn", "_lock", "path")

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._conn = connect(path)
        self._lock = threading.Lock()

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self._conn)

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            with transaction(self._conn):
                result = fn(self._conn)
            anchor_audit(self._conn)
            return result

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.read_sync, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.write_sync, fn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# --- folders, members, heads, key slots ----------------------------------------------


@dataclass(frozen=True, slots=True)
class FolderRow:
    id: str  # internal id: the object store namespace
    name: str
    owner: str  # user name
    created: float
    head: str | None
    seq: int


_FOLDER_SELECT = """
    SELECT f.id, f.name, u.name, f.created, h.head, h.seq
    FROM folders f JOIN users u ON u.id = f.owner JOIN heads h ON h.folder_id = f.id
"""


def folder_by_name(conn: sqlite3.Connection, name: str) -> FolderRow | None:
    row = conn.execute(_FOLDER_SELECT + " WHERE f.name = ?", (name,)).fetchone()
    return FolderRow(*row) if row else None


def all_folders(conn: sqlite3.Connection) -> list[FolderRow]:
    return [FolderRow(*r) for r in conn.execute(_FOLDER_SELECT + " ORDER BY f.name")]


def create_folder(
    conn: sqlite3.Connection, folder_id: str, name: str, owner_id: int, now: float
) -> bool:
    """Insert a folder with its owner membership and an empty head; False if taken."""
    if conn.execute("SELECT 1 FROM folders WHERE name = ?", (name,)).fetchone():
        return False
    conn.execute(
        "INSERT INTO folders (id, name, owner, created) VALUES (?, ?, ?, ?)",
        (folder_id, name, owner_id, now),
    )
    conn.execute(
        "INSERT INTO members (folder_id, user_id, role) VALUES (?, ?, 'owner')",
        (folder_id, owner_id),
    )
    conn.execute("INSERT INTO heads (folder_id, head, seq) VALUES (?, NULL, 0)", (folder_id,))
    return True


def role_of(conn: sqlite3.Connection, folder_id: str, user_id: int) -> str | None:
    row = conn.execute(
        "SELECT role FROM members WHERE folder_id = ? AND user_id = ?", (folder_id, user_id)
    ).fetchone()
    return row[0] if row else None


def folders_of_user(conn: sqlite3.Connection, user_id: int) -> list[tuple[FolderRow, str]]:
    rows = conn.execute(
        _FOLDER_SELECT.replace("SELECT f.id", "SELECT m.role, f.id")
        + " JOIN members m ON m.folder_id = f.id WHERE m.user_id = ? ORDER BY f.name",
        (user_id,),
    ).fetchall()
    return [(FolderRow(*r[1:]), r[0]) for r in rows]


def members_of(conn: sqlite3.Connection, folder_id: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT u.name, m.role FROM members m JOIN users u ON u.id = m.user_id "
        "WHERE m.folder_id = ? ORDER BY u.name",
        (folder_id,),
    )
    return dict(rows.fetchall())


def set_member(conn: sqlite3.Connection, folder_id: str, user_id: int, role: str) -> None:
    conn.execute(
        "INSERT INTO members (folder_id, user_id, role) VALUES (?, ?, ?) "
        "ON CONFLICT (folder_id, user_id) DO UPDATE SET role = excluded.role",
        (folder_id, user_id, role),
    )


def head_of(conn: sqlite3.Connection, folder_id: str) -> tuple[str | None, int]:
    row = conn.execute("SELECT head, seq FROM heads WHERE folder_id = ?", (folder_id,)).fetchone()
    return (row[0], row[1]) if row else (None, 0)


def cas_head(
    conn: sqlite3.Connection,
    folder_id: str,
    expected: str | None,
    new: str,
    *,
    device: str,
    user: str,
    now: float,
) -> tuple[bool, str | None, int]:
    """Move the head from ``expected`` to ``new`` and log it; call inside a transaction.

    Returns (moved, head, seq): the new state on success, the current one otherwise.
    Setting the head to its current value succeeds without a new log row.

    The swap is ONE conditional UPDATE: atomic on either engine, whatever the isolation
    level, so of two servers racing exactly one wins.
    """
    if new == expected:
        head, seq = head_of(conn, folder_id)
        return head == expected, head, seq
    row = conn.execute(
        "UPDATE heads SET head = ?, seq = seq + 1 "
        "WHERE folder_id = ? AND head IS NOT DISTINCT FROM ? RETURNING seq",
        (new, folder_id, expected),
    ).fetchone()
    if row is None:
        head, seq = head_of(conn, folder_id)
        return False, head, seq
    seq, head = int(row[0]), expected
    conn.execute(
        "INSERT INTO head_log (folder_id, seq, head, previous, time, device, user) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (folder_id, seq, new, head, now, device, user),
    )
    return True, new, seq


def head_log(
    conn: sqlite3.Connection, folder_id: str, after: int, limit: int
) -> list[tuple[int, str, str | None, float, str, str]]:
    return conn.execute(
        "SELECT seq, head, previous, time, device, user FROM head_log "
        "WHERE folder_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (folder_id, after, limit),
    ).fetchall()


def keyslots_of(conn: sqlite3.Connection, folder_id: str) -> dict[str, bytes]:
    rows = conn.execute(
        "SELECT name, blob FROM keyslots WHERE folder_id = ? ORDER BY name", (folder_id,)
    )
    return {name: bytes(blob) for name, blob in rows}


def put_keyslot(
    conn: sqlite3.Connection, folder_id: str, name: str, blob: bytes, now: float, max_slots: int
) -> bool | None:
    """Insert or replace a slot. Returns True if new, False if replaced, None if full."""
    exists = conn.execute(
        "SELECT 1 FROM keyslots WHERE folder_id = ? AND name = ?", (folder_id, name)
    ).fetchone()
    if not exists:
        count = conn.execute(
            "SELECT count(*) FROM keyslots WHERE folder_id = ?", (folder_id,)
        ).fetchone()[0]
        if count >= max_slots:
            return None
    conn.execute(
        "INSERT INTO keyslots (folder_id, name, blob, updated) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (folder_id, name) DO UPDATE SET blob = excluded.blob, updated = excluded.updated",
        (folder_id, name, blob, now),
    )
    return not exists
