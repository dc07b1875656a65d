"""A user's own devices in the metadata database: list them, revoke one, and give a
device that logs in again a fresh token instead of a second device row.

Kept beside :mod:`chunksync_server.auth` (which owns tokens) so the account API can let
a person manage their devices without admin rights: every function here is scoped to
one ``user_id``, so nobody can see or revoke another user's device.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["DeviceRow", "devices_of", "reuse_device", "revoke_own_device", "token_hashes_of"]


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    name: str
    created: float
    last_seen: float | None
    revoked: bool

    def to_wire(self, current: str) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "created": self.created,
            "last_seen": self.last_seen,
            "revoked": self.revoked,
            "current": self.id == current,
        }


def devices_of(conn: sqlite3.Connection, user_id: int) -> list[DeviceRow]:
    rows = conn.execute(
        "SELECT id, name, created, last_seen, revoked FROM devices WHERE user_id = ? "
        "ORDER BY created, id",
        (user_id,),
    ).fetchall()
    return [DeviceRow(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]


def token_hashes_of(conn: sqlite3.Connection, device_id: str) -> list[bytes]:
    rows = conn.execute("SELECT hash FROM tokens WHERE device_id = ?", (device_id,)).fetchall()
    return [bytes(r[0]) for r in rows]


def revoke_own_device(conn: sqlite3.Connection, user_id: int, device_id: str) -> bool:
    """Revoke ``device_id`` and its tokens if it is one of ``user_id``'s devices."""
    cur = conn.execute(
        "UPDATE devices SET revoked = 1 WHERE id = ? AND user_id = ?", (device_id, user_id)
    )
    if cur.rowcount != 1:
        return False
    conn.execute("UPDATE tokens SET revoked = 1 WHERE device_id = ?", (device_id,))
    return True


def reuse_device(
    conn: sqlite3.Connection, user_id: int, device_id: str, name: str, now: float
) -> bool:
    """Make a re-login of ``device_id`` (a live device of this user) replace its token:
    every token it had is revoked and its name refreshed. False when the id is not a
    live device of this user (then the caller adds a new one). The password that
    authenticated this login is what proves the device is the user's to take over,
    exactly as it would let them revoke it."""
    cur = conn.execute(
        "UPDATE devices SET name = ?, last_seen = ? WHERE id = ? AND user_id = ? AND revoked = 0",
        (name, now, device_id, user_id),
    )
    if cur.rowcount != 1:
        return False
    conn.execute("UPDATE tokens SET revoked = 1 WHERE device_id = ?", (device_id,))
    return True
