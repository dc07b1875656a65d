"""The append-only, hash-chained audit log.

Every security-relevant event (logins, token issue/rotate/revoke, head moves, key-slot
changes, folder creation, admin actions, denied requests) becomes one row of the
``audit`` table with server time, user, device, remote address, an action name and a
JSON detail. Rows are chained: ``hash = sha256(prev_hash ‖ canonical(row))`` where
``canonical`` is compact, key-sorted JSON of the row's fields, and the first row's
``prev_hash`` is 64 zeros. SQLite triggers refuse UPDATE and DELETE, and anyone who
bypasses them (editing the file) breaks the chain, which :func:`verify` reports by
naming the first row that no longer matches.

:func:`append` must run inside a write transaction (``BEGIN IMMEDIATE``) so that
reading the previous hash and inserting the next row cannot interleave with another
writer — the server and the admin CLI both append.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GENESIS", "AuditEntry", "VerifyResult", "append", "entries", "verify"]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    time: float
    user: str | None
    device: str | None
    address: str | None
    action: str
    folder: str | None
    detail: str          # canonical JSON text
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time,
            "user": self.user,
            "device": self.device,
            "address": self.address,
            "action": self.action,
            "folder": self.folder,
            "detail": json.loads(self.detail),
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    rows: int
    first_bad: int | None = None
    reason: str = ""


def _canonical_detail(detail: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"))


def row_hash(
    prev_hash: str,
    row_id: int,
    time: float,
    user: str | None,
    device: str | None,
    address: str | None,
    action: str,
    folder: str | None,
    detail: str,
) -> str:
    """The chain link of one row (pure)."""
    body = json.dumps(
        [row_id, repr(time), user, device, address, action, folder, detail],
        separators=(",", ":"),
    )
    return hashlib.sha256(prev_hash.encode() + b"\n" + body.encode()).hexdigest()


def append(
    conn: sqlite3.Connection,
    *,
    action: str,
    time: float,
    user: str | None = None,
    device: str | None = None,
    address: str | None = None,
    folder: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Append one row to the chain; the caller holds a write transaction."""
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    row_id, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    text = _canonical_detail(detail)
    digest = row_hash(prev, row_id, time, user, device, address, action, folder, text)
    conn.execute(
        "INSERT INTO audit (id, time, user, device, address, action, folder, detail, "
        "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row_id, time, user, device, address, action, folder, text, prev, digest),
    )
    return row_id


_COLUMNS = "id, time, user, device, address, action, folder, detail, prev_hash, hash"


def entries(
    conn: sqlite3.Connection, *, folder: str | None = None, since: float | None = None
) -> list[AuditEntry]:
    """Rows in chain order, optionally only one folder's or those at/after ``since``."""
    query = f"SELECT {_COLUMNS} FROM audit WHERE 1=1"
    args: list[Any] = []
    if folder is not None:
        query += " AND folder = ?"
        args.append(folder)
    if since is not None:
        query += " AND time >= ?"
        args.append(since)
    return [AuditEntry(*row) for row in conn.execute(query + " ORDER BY id", args)]


def verify(conn: sqlite3.Connection) -> VerifyResult:
    """Walk the whole chain; report the first row whose link does not hold."""
    prev = GENESIS
    expected_id = 1
    count = 0
    for row in conn.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY id"):
        entry = AuditEntry(*row)
        count += 1
        if entry.id != expected_id:
            return VerifyResult(False, count, entry.id, f"row {expected_id} is missing")
        if entry.prev_hash != prev:
            return VerifyResult(False, count, entry.id, "previous-hash link broken")
        digest = row_hash(
            prev, entry.id, entry.time, entry.user, entry.device, entry.address,
            entry.action, entry.folder, entry.detail,
        )
        if digest != entry.hash:
            return VerifyResult(False, count, entry.id, "row content does not match its hash")
        prev = entry.hash
        expected_id += 1
    return VerifyResult(True, count)
