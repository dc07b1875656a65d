"""What the admin pages show, read from the live server's database and store.

Pure reads on the server's own connections (``MetaDB.read``, the store's ``stats`` on a
worker thread), so a page never waits behind a second connection. The revoke action
writes its audit row naming the admin and the browser's address.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from aiohttp import web

from .. import audit, auth, db
from .. import quota as quota_mod
from ..handlers.common import CONFIG, DB, STORE, now, remote

__all__ = ["audit_view", "devices", "folders", "health", "revoke", "users"]

AUDIT_SHOWN = 200


async def users(app: web.Application) -> list[dict[str, Any]]:
    def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        return [
            {
                "name": u.name,
                "admin": u.admin,
                "disabled": u.disabled,
                "totp": u.totp_secret is not None,
                "created": u.created,
                "quota": quota_mod.owner_quota(conn, u.name),
            }
            for u in auth.all_users(conn)
        ]

    return await app[DB].read(read)


async def devices(app: web.Application) -> list[dict[str, Any]]:
    def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            "SELECT d.id, u.name, d.name, d.created, d.last_seen, d.revoked "
            "FROM devices d JOIN users u ON u.id = d.user_id ORDER BY u.name, d.created"
        ).fetchall()
        keys = ("id", "user", "name", "created", "last_seen", "revoked")
        return [{**dict(zip(keys, r)), "revoked": bool(r[5])} for r in rows]

    return await app[DB].read(read)


async def folders(app: web.Application) -> list[dict[str, Any]]:
    def read(conn: sqlite3.Connection) -> list[tuple[db.FolderRow, dict[str, str], int | None]]:
        return [
            (f, db.members_of(conn, f.id), quota_mod.owner_quota(conn, f.owner))
            for f in db.all_folders(conn)
        ]

    rows = await app[DB].read(read)
    store: Any = app[STORE]  # an ObjectStore (the app key is structural)
    out = []
    for f, members, quota in rows:
        stats = await asyncio.to_thread(store.stats, f.id)
        out.append(
            {
                "name": f.name,
                "owner": f.owner,
                "members": members,
                "head": f.head,
                "seq": f.seq,
                "objects": stats.objects,
                "bytes": stats.bytes,
                "quota": quota,
            }
        )
    return out


async def audit_view(app: web.Application) -> tuple[audit.VerifyResult, list[audit.AuditEntry]]:
    head_file = app[CONFIG].data_dir / audit.HEAD_FILE

    def read(conn: sqlite3.Connection) -> tuple[audit.VerifyResult, list[audit.AuditEntry]]:
        return audit.verify(conn, head_file), audit.entries(conn)[-AUDIT_SHOWN:][::-1]

    return await app[DB].read(read)


async def health(app: web.Application) -> dict[str, Any]:
    def read(conn: sqlite3.Connection) -> dict[str, int]:
        return {
            # B608: table names from a fixed tuple
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # nosec B608
            for table in ("users", "devices", "folders", "head_log", "audit")
        }

    counts = await app[DB].read(read)
    stored = [f["bytes"] for f in await folders(app)]
    verified, _ = await audit_view(app)
    return {
        "database": "ok",
        "counts": counts,
        "stored_bytes": sum(stored),
        "audit_ok": verified.ok,
        "audit_rows": verified.rows,
        "audit_reason": verified.reason,
        "time": now(),
    }


async def revoke(request: web.Request, device_id: str, admin_name: str) -> str | None:
    """Revoke a device's tokens (refused at its next request); None if unknown."""
    t, address = now(), remote(request)

    def write(conn: sqlite3.Connection) -> str | None:
        row = conn.execute(
            "SELECT u.name FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = ?",
            (device_id,),
        ).fetchone()
        if row is None or not auth.revoke_device(conn, device_id):
            return None
        audit.append(
            conn,
            action="admin.device.revoke",
            time=t,
            user=row[0],
            device=device_id,
            address=address,
            detail={"by": admin_name, "via": "admin page"},
        )
        return str(row[0])

    return await request.app[DB].write(write)  # anchors the audit chain head too
