"""Per-user storage quotas: the stored bytes of every folder a user owns.

A quota is checked before an upload is stored; a user without one (the default) costs
nothing. Usage comes from the object store's own statistics, cached per owner for
:data:`REFRESH_SECONDS` and raised by every accepted upload meanwhile, so a re-upload
of objects already stored may count twice until the next refresh: the check errs on the
side of refusing early, never of letting a user run far past the limit. Going over is
answered ``507 Insufficient Storage`` (``wire.QUOTA_STATUS``), which clients treat as
final, not as a transient server error.

With a shared store (S3 with its index in the database, several server processes) the
usage is read from the index on every check instead: a per-process cache would let
each of N servers admit a full quota's worth, so the check stays correct across
processes at the price of one indexed query per upload batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REFRESH_SECONDS", "QuotaTracker", "owner_quota", "set_quota"]

REFRESH_SECONDS = 60.0


def owner_quota(conn: sqlite3.Connection, owner: str) -> int | None:
    row = conn.execute("SELECT quota_bytes FROM users WHERE name = ?", (owner,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def set_quota(conn: sqlite3.Connection, user: str, quota: int | None) -> bool:
    cur = conn.execute("UPDATE users SET quota_bytes = ? WHERE name = ?", (quota, user))
    return cur.rowcount == 1


def _owned_namespaces(conn: sqlite3.Connection, owner: str) -> list[str]:
    rows = conn.execute(
        "SELECT f.id FROM folders f JOIN users u ON u.id = f.owner WHERE u.name = ?", (owner,)
    )
    return [r[0] for r in rows]


@dataclass
class QuotaTracker:
    """Cached usage per owner (bytes, when measured)."""

    usage: dict[str, tuple[int, float]] = field(default_factory=dict)

    async def check(self, db: Any, store: Any, owner: str, incoming: int) -> str | None:
        """None when ``incoming`` more bytes fit the owner's quota, else the refusal."""
        quota = await db.read(lambda c: owner_quota(c, owner))
        if quota is None:
            return None
        used, measured = self.usage.get(owner, (0, 0.0))
        shared = getattr(store, "shared", False)  # usage from the shared index: always fresh
        if shared or time.monotonic() - measured > REFRESH_SECONDS:
            namespaces = await db.read(lambda c: _owned_namespaces(c, owner))
            used = await asyncio.to_thread(lambda: sum(store.stats(ns).bytes for ns in namespaces))
            self.usage[owner] = (used, time.monotonic())
        if used + incoming > quota:
            return (
                f"storage quota exceeded: {owner} uses {used:,} of {quota:,} bytes "
                f"and this upload needs {incoming:,} more"
            )
        return None

    def add(self, owner: str, stored: int) -> None:
        if owner in self.usage:
            used, measured = self.usage[owner]
            self.usage[owner] = (used + stored, measured)
