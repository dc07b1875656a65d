"""The append-only, hash-chained audit log.

Every security-relevant event (logins, token issue/rotate/revoke, head moves, key-slot
changes, folder creation, admin actions, denied requests) becomes one row of the
``audit`` table with server time, user, device, remote address, an action name and a
JSON detail. Rows are chained: ``hash = sha256(prev_hash ‖ canonical(row))`` where
``canonical`` is compact, key-sorted JSON of the row's fields, and the first row's
``prev_hash`` is 64 zeros. SQLite triggers refuse UPDATE and DELETE, and anyone who
bypasses them (editing the file) breaks the chain, which :func:`verify` reports by
naming the first row that no longer matches.

The chain alone cannot show that its newest rows were cut off: what remains still
links. So the **chain head** — the last row's id and hash — is also kept apart from
the table, in ``DATA/audit-head.json`` (:data:`HEAD_FILE`), rewritten atomically by
:func:`anchor` after every committed write that added rows (the server's
:class:`~chunksync_server.db.MetaDB` and the admin CLI both call it). :func:`verify` given that
file fails when the recorded row is gone or differs; rows newer than it are fine (the
file may lag a crash). :func:`anchor` never moves the head onto a chain that does not
extend the recorded one, so a truncation stays visible. ``audit --verify`` prints the
head, so an admin can also keep it off the machine.

:func:`append` must run inside a write transaction (``BEGIN IMMEDIATE``) so that
reading the previous hash and inserting the next row cannot interleave with another
writer — the server and the admin CLI both append.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "GENESIS",
    "HEAD_FILE",
    "AuditEntry",
    "ChainHead",
    "VerifyResult",
    "anchor",
    "append",
    "entries",
    "read_head",
    "verify",
]

GENESIS = "0" * 64
HEAD_FILE = "audit-head.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    time: float
    user: str | None
    device: str | None
    address: str | None
    action: str
    folder: str | None
    detail: str  # canonical JSON text
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
    head: ChainHead | None = None  # the last row that verified


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The id and hash of the newest row, as recorded outside the table."""

    seq: int
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}


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
    # B608: constant SQL, values bound as ?
    query = f"SELECT {_COLUMNS} FROM audit WHERE 1=1"  # nosec B608
    args: list[Any] = []
    if folder is not None:
        query += " AND folder = ?"
        args.append(folder)
    if since is not None:
        query += " AND time >= ?"
        args.append(since)
    return [AuditEntry(*row) for row in conn.execute(query + " ORDER BY id", args)]


def verify(conn: sqlite3.Connection, head_file: Path | None = None) -> VerifyResult:
    """Walk the whole chain; report the first row whose link does not hold.

    With ``head_file`` the recorded chain head must be in the chain too, else the
    newest rows were removed (see the module docstring).
    """
    recorded: ChainHead | None = None
    if head_file is not None:
        try:
            recorded = read_head(head_file)
        except ValueError as exc:
            return VerifyResult(False, 0, None, str(exc))
    prev = GENESIS
    expected_id = 1
    count = 0
    head = None
    # B608: constant SQL, values bound as ?
    for row in conn.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY id"):  # nosec B608
        entry = AuditEntry(*row)
        count += 1
        if entry.id != expected_id:
            return VerifyResult(False, count, entry.id, f"row {expected_id} is missing", head)
        if entry.prev_hash != prev:
            return VerifyResult(False, count, entry.id, "previous-hash link broken", head)
        digest = row_hash(
            prev,
            entry.id,
            entry.time,
            entry.user,
            entry.device,
            entry.address,
            entry.action,
            entry.folder,
            entry.detail,
        )
        if digest != entry.hash:
            return VerifyResult(False, count, entry.id, "row content does not match its hash", head)
        if recorded is not None and entry.id == recorded.seq and entry.hash != recorded.hash:
            return VerifyResult(
                False, count, entry.id, "row differs from the recorded chain head", head
            )
        prev = entry.hash
        head = ChainHead(entry.id, entry.hash)
        expected_id += 1
    if recorded is not None and recorded.seq > count:
        return VerifyResult(
            False,
            count,
            count + 1,
            f"rows {count + 1}..{recorded.seq} are missing (removed after the recorded chain head)",
            head,
        )
    if head_file is not None and recorded is None and count:
        return VerifyResult(
            False,
            count,
            None,
            f"{head_file.name} is missing: removed newest rows would go unseen",
            head,
        )
    return VerifyResult(True, count, head=head)


# --- the chain head kept apart from the table --------------------------------------


def read_head(path: Path) -> ChainHead | None:
    """The recorded chain head, None when there is no file; ValueError if unreadable."""
    try:
        doc = json.loads(path.read_text())
        return ChainHead(int(doc["seq"]), str(doc["hash"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path.name} is unreadable: {exc}") from None


def _write_head(path: Path, head: ChainHead) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(head.to_json()).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def head_file_of(conn: sqlite3.Connection) -> Path | None:
    """``audit-head.json`` beside the connection's database file (None in memory)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main" and file:
            return Path(file).parent / HEAD_FILE
    return None


def anchor(conn: sqlite3.Connection) -> None:
    """Record the newest committed row as the chain head; call outside a transaction.

    Moves the head forward only when the recorded row is still there unchanged, so a
    removed tail is never papered over; it logs that instead.
    """
    path = head_file_of(conn)
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    if path is None or last is None:
        return
    newest = ChainHead(int(last[0]), str(last[1]))
    if _ANCHORED.get(path) == newest:
        return
    try:
        recorded = read_head(path)
    except ValueError as exc:
        log.error("audit chain head not updated: %s", exc)
        return
    if recorded is not None:
        if recorded.seq >= newest.seq:
            if recorded.seq > newest.seq:
                _warn_once(
                    path,
                    f"audit rows after {newest.seq} were removed "
                    f"(the chain head file records row {recorded.seq})",
                )
            return
        row = conn.execute("SELECT hash FROM audit WHERE id = ?", (recorded.seq,)).fetchone()
        if row is None or row[0] != recorded.hash:
            _warn_once(path, f"audit row {recorded.seq} differs from the recorded chain head")
            return
    _write_head(path, newest)
    _ANCHORED[path] = newest


def _warn_once(path: Path, message: str) -> None:
    if path not in _WARNED:
        _WARNED.add(path)
        log.error("%s; the chain head is left as it was (run audit --verify)", message)


#: the head this process last wrote per file: skips re-reading it on every write
_ANCHORED: dict[Path, ChainHead] = {}
_WARNED: set[Path] = set()
