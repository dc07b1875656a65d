"""The storage epoch: a token that changes whenever the server may have lost objects.

Clients cache which objects the server holds, so they upload only what is new. That
cache is right until the server loses something: a crash that loses the last writes
of its object index, damage that ``check --repair`` quarantines. The server cannot
always know what it lost, but it knows *when* it may have: at every start, and at
every repair. The epoch names that moment; a client whose last check of the head's
objects was made under another epoch checks again (one batched "missing" query) and
re-uploads what is gone (``chunksync.sync.heal``). A hostile server can withhold a
new epoch, but it can withhold objects anyway: availability is not what the client
relies on the server for.

The epoch is ``START.REPAIR``: a random token drawn when the process starts, and the
modification time of ``DATA/storage-repaired``, which ``check --repair`` (another
process) touches, so a running server picks a repair up without a restart.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path

__all__ = [
    "REPAIR_MARK",
    "bump_shared_epoch",
    "current_epoch",
    "mark_repaired",
    "shared_epoch",
    "start_token",
]

REPAIR_MARK = "storage-repaired"


def start_token() -> str:
    return secrets.token_hex(8)


def current_epoch(data_dir: Path, start: str) -> str:
    try:
        repaired = os.stat(data_dir / REPAIR_MARK).st_mtime_ns
    except FileNotFoundError:
        return start
    return f"{start}.{repaired}"


def mark_repaired(data_dir: Path) -> None:
    """Record that objects may have been lost just now (tmp, fsync, rename).

    Called by ``check --repair`` and by the server for each damaged object it finds.
    The new mark's time is made later than the old one's even on a coarse clock, so
    every call changes the epoch.
    """
    mark = data_dir / REPAIR_MARK
    try:
        before = os.stat(mark).st_mtime_ns
    except FileNotFoundError:
        before = 0
    tmp = data_dir / f".{REPAIR_MARK}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(str(os.getpid()).encode())
        f.flush()
        os.fsync(f.fileno())
    stamp = max(time.time_ns(), before + 1)
    os.utime(tmp, ns=(stamp, stamp))
    os.replace(tmp, mark)


# --- the shared epoch: several server processes on one bucket and one database -------
#
# With a shared store (S3 + PostgreSQL, several stateless servers) no process start can
# lose objects — every PUT is durable before it is indexed — so the epoch must NOT
# change per process: a client moving between servers would re-check its whole folder
# on every switch. It lives in the database instead and changes only on a repair or a
# damaged object, whichever server (or admin command) finds it.

SHARED_EPOCH = "epoch"


def shared_epoch(conn: sqlite3.Connection) -> str:
    """The cluster's epoch, created on first use (call in a write transaction)."""
    row = conn.execute("SELECT value FROM cluster_state WHERE name = ?", (SHARED_EPOCH,)).fetchone()
    if row is not None:
        return str(row[0])
    conn.execute(
        "INSERT OR IGNORE INTO cluster_state (name, value) VALUES (?, ?)",
        (SHARED_EPOCH, start_token()),
    )
    return str(
        conn.execute("SELECT value FROM cluster_state WHERE name = ?", (SHARED_EPOCH,)).fetchone()[
            0
        ]
    )


def bump_shared_epoch(conn: sqlite3.Connection) -> str:
    """Objects may have been lost just now: every client re-checks (write transaction)."""
    token = start_token()
    shared_epoch(conn)
    conn.execute("UPDATE cluster_state SET value = ? WHERE name = ?", (token, SHARED_EPOCH))
    return token
