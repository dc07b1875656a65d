"""Storage-lifecycle queries of the metadata database (schema: migration 5 in db.py).

* ``forgotten``: snapshots (head-log heads) taken out of the folder's history by
  ``forget``. Their head-log rows and commit objects stay — the history clients verify
  is a hash chain, and a hole in it would look exactly like a server hiding or
  rewinding history — but their trees and file data are no longer kept by a prune.
* ``device_heads``: the last heads each device was shown (GET head answers) since it
  last moved the head itself. A device bases its next merge on one of them, so
  ``forget`` keeps them.
* ``retention``: the folder's stored policy (JSON, :mod:`chunksync.retention`) and a
  summary of its last prune (JSON), shown by ``chunksync-server stats``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

__all__ = [
    "DEVICE_HEADS_KEPT",
    "device_heads",
    "forget",
    "forgotten",
    "last_prune",
    "note_device_head",
    "policy",
    "set_last_prune",
    "set_policy",
]

#: heads remembered per device and folder: the base a device merges on is one of the
#: last heads it was shown, unless that many rounds in a row failed
DEVICE_HEADS_KEPT = 8


def forgotten(conn: sqlite3.Connection, folder_id: str) -> set[str]:
    rows = conn.execute("SELECT head FROM forgotten WHERE folder_id = ?", (folder_id,))
    return {r[0] for r in rows}


def forget(
    conn: sqlite3.Connection, folder_id: str, heads: list[str], now: float, reason: str
) -> int:
    """Mark snapshots forgotten; returns how many were not already."""
    cur = conn.executemany(
        "INSERT OR IGNORE INTO forgotten (folder_id, head, time, reason) VALUES (?, ?, ?, ?)",
        [(folder_id, h, now, reason) for h in heads],
    )
    return cur.rowcount


def note_device_head(
    conn: sqlite3.Connection,
    folder_id: str,
    device_id: str,
    head: str,
    now: float,
    *,
    moved: bool = False,
) -> None:
    """Remember that ``device_id`` was shown ``head``; keep its newest few.

    ``moved``: the device moved the head there itself. It then bases on that head —
    if its answer was lost, its next round merges from that commit (sync/intent.py) —
    so the heads it was shown before are no longer its base.
    """
    if moved:
        conn.execute(
            "DELETE FROM device_heads WHERE folder_id = ? AND device_id = ?",
            (folder_id, device_id),
        )
    conn.execute(
        "INSERT INTO device_heads (folder_id, device_id, head, time) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (folder_id, device_id, head) DO UPDATE SET time = excluded.time",
        (folder_id, device_id, head, now),
    )
    conn.execute(
        "DELETE FROM device_heads WHERE folder_id = ? AND device_id = ? AND head NOT IN "
        "(SELECT head FROM device_heads WHERE folder_id = ? AND device_id = ? "
        "ORDER BY time DESC LIMIT ?)",
        (folder_id, device_id, folder_id, device_id, DEVICE_HEADS_KEPT),
    )


def device_heads(conn: sqlite3.Connection, folder_id: str) -> dict[str, list[str]]:
    """Per device that is not revoked, the heads it may still base on."""
    rows = conn.execute(
        "SELECT h.device_id, h.head FROM device_heads h JOIN devices d ON d.id = h.device_id "
        "WHERE h.folder_id = ? AND d.revoked = 0 ORDER BY h.device_id, h.time DESC",
        (folder_id,),
    )
    out: dict[str, list[str]] = {}
    for device, head in rows:
        out.setdefault(device, []).append(head)
    return out


def _retention(conn: sqlite3.Connection, folder_id: str, column: str) -> Any:
    # B608: the column comes from the two callers below, never from a request
    row = conn.execute(
        f"SELECT {column} FROM retention WHERE folder_id = ?",  # nosec B608
        (folder_id,),
    ).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def _set_retention(conn: sqlite3.Connection, folder_id: str, column: str, value: Any) -> None:
    text = json.dumps(value, sort_keys=True) if value is not None else None
    conn.execute(
        # B608: the column comes from the two callers below, never from a request
        f"INSERT INTO retention (folder_id, {column}) VALUES (?, ?) "  # nosec B608
        f"ON CONFLICT (folder_id) DO UPDATE SET {column} = excluded.{column}",
        (folder_id, text),
    )


def policy(conn: sqlite3.Connection, folder_id: str) -> dict[str, Any] | None:
    return _retention(conn, folder_id, "policy")  # type: ignore[no-any-return]


def set_policy(conn: sqlite3.Connection, folder_id: str, value: dict[str, Any] | None) -> None:
    _set_retention(conn, folder_id, "policy", value)


def last_prune(conn: sqlite3.Connection, folder_id: str) -> dict[str, Any] | None:
    return _retention(conn, folder_id, "last_prune")  # type: ignore[no-any-return]


def set_last_prune(conn: sqlite3.Connection, folder_id: str, value: dict[str, Any]) -> None:
    _set_retention(conn, folder_id, "last_prune", value)
