"""Admin operations behind ``chunksync-server`` subcommands (and test helpers).

Each function opens the data directory's metadata database with its own connection, so
it works while the server runs (WAL + busy timeout; writes in ``BEGIN IMMEDIATE``).
Every change is audited with ``address="cli"``. The object store is opened only by the
functions that need object counts or integrity checks; while a server holds the store,
``open_store`` gives a read-only view. Failures raise :class:`UserError` /
:class:`ConfigError` with one-line messages; the CLI maps them to exit codes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chunksync import wire
from chunksync.errors import ConfigError, UserError

from . import audit, auth, db, epoch
from . import quota as quota_mod
from .config import Argon2Params, db_location, ensure_data_dir, store_location

__all__ = [
    "CheckReport",
    "add_member",
    "add_user",
    "check",
    "check_password",
    "check_report",
    "disable_user",
    "list_devices",
    "list_folders",
    "list_users",
    "read_audit",
    "revoke_device",
    "stats",
    "verify_audit",
]

CLI_ADDRESS = "cli"


@contextmanager
def _conn(data_dir: Path, *, create: bool = False) -> Iterator[sqlite3.Connection]:
    path = db_location(data_dir)
    if create:
        ensure_data_dir(data_dir)
    elif isinstance(path, Path) and not path.exists():
        raise ConfigError(f"no chunksync server data in {data_dir} (missing meta.db)")
    conn = db.connect(path)
    try:
        yield conn
        if conn.total_changes:  # after the caller's commit: keep the chain head current
            db.anchor_audit(conn)
    finally:
        conn.close()


def _audit(conn: sqlite3.Connection, action: str, **fields: Any) -> None:
    audit.append(conn, action=action, time=time.time(), address=CLI_ADDRESS, **fields)


@contextmanager
def _store(
    data_dir: Path, store_url: str | None, on_damage: Callable[[Any], None] | None = None
) -> Iterator[Any]:
    """A read-only view (``on_damage`` is ignored: a view never quarantines)."""
    from .storage import open_store

    store = open_store(
        store_location(data_dir, store_url), read_only=True, meta=db_location(data_dir)
    )
    try:
        yield store
    finally:
        store.close()


def add_user(
    data_dir: Path,
    name: str,
    password: str,
    *,
    admin: bool = False,
    params: Argon2Params | None = None,
) -> None:
    if not wire.USER_NAME.match(name):
        raise UserError(f"invalid user name {name!r} (lowercase letters, digits, . _ -)")
    check_password(password)
    pw_hash = auth.hash_password(password, params or Argon2Params())
    with _conn(data_dir, create=True) as conn, db.transaction(conn):
        if auth.add_user(conn, name, pw_hash, admin=admin, now=time.time()) is None:
            raise UserError(f"user {name!r} already exists")
        _audit(conn, "admin.user.add", user=name, detail={"admin": admin})


def check_password(password: str) -> None:
    """The one password rule (new accounts and resets)."""
    if len(password) < 8:
        raise UserError("password must have at least 8 characters")


def list_users(data_dir: Path) -> list[dict[str, Any]]:
    with _conn(data_dir) as conn:
        return [
            {
                "name": u.name,
                "admin": u.admin,
                "disabled": u.disabled,
                "totp": u.totp_secret is not None,
                "created": u.created,
            }
            for u in auth.all_users(conn)
        ]


def disable_user(data_dir: Path, name: str) -> None:
    with _conn(data_dir) as conn, db.transaction(conn):
        if not auth.set_user_disabled(conn, name, True):
            raise UserError(f"no user {name!r}")
        _audit(conn, "admin.user.disable", user=name)


def set_quota(data_dir: Path, name: str, quota: int | None) -> None:
    """Limit the bytes stored in the folders ``name`` owns (None: no limit)."""
    if quota is not None and quota < 0:
        raise UserError("a quota cannot be negative")
    with _conn(data_dir) as conn, db.transaction(conn):
        if not quota_mod.set_quota(conn, name, quota):
            raise UserError(f"no user {name!r}")
        _audit(conn, "admin.user.quota", user=name, detail={"quota_bytes": quota})


def list_devices(data_dir: Path) -> list[dict[str, Any]]:
    with _conn(data_dir) as conn:
        rows = conn.execute(
            "SELECT d.id, u.name, d.name, d.created, d.last_seen, d.revoked "
            "FROM devices d JOIN users u ON u.id = d.user_id ORDER BY u.name, d.created"
        ).fetchall()
    keys = ("id", "user", "name", "created", "last_seen", "revoked")
    return [{**dict(zip(keys, r)), "revoked": bool(r[5])} for r in rows]


def revoke_device(data_dir: Path, device_id: str) -> None:
    with _conn(data_dir) as conn, db.transaction(conn):
        row = conn.execute(
            "SELECT u.name FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = ?",
            (device_id,),
        ).fetchone()
        if row is None or not auth.revoke_device(conn, device_id):
            raise UserError(f"no device {device_id!r}")
        _audit(conn, "admin.device.revoke", user=row[0], device=device_id)


def list_folders(data_dir: Path, store_url: str | None = None) -> list[dict[str, Any]]:
    with _conn(data_dir) as conn:
        folders = [(f, db.members_of(conn, f.id)) for f in db.all_folders(conn)]
    out = []
    with _store(data_dir, store_url) as store:
        for f, members in folders:
            st = store.stats(f.id)
            out.append(
                {
                    "name": f.name,
                    "id": f.id,
                    "owner": f.owner,
                    "members": members,
                    "head": f.head,
                    "seq": f.seq,
                    "objects": st.objects,
                    "bytes": st.bytes,
                }
            )
    return out


def add_member(data_dir: Path, folder: str, user: str, role: str) -> None:
    if role not in wire.ROLES:
        raise UserError(f"invalid role {role!r} (one of {', '.join(wire.ROLES)})")
    with _conn(data_dir) as conn, db.transaction(conn):
        row = db.folder_by_name(conn, folder)
        if row is None:
            raise UserError(f"no folder {folder!r}")
        member = auth.user_by_name(conn, user)
        if member is None:
            raise UserError(f"no user {user!r}")
        db.set_member(conn, row.id, member.id, role)
        _audit(conn, "admin.folder.member", user=user, folder=folder, detail={"role": role})


def read_audit(
    data_dir: Path, *, folder: str | None = None, since: float | None = None
) -> list[audit.AuditEntry]:
    with _conn(data_dir) as conn:
        return audit.entries(conn, folder=folder, since=since)


def verify_audit(data_dir: Path) -> audit.VerifyResult:
    """The chain, and the chain head recorded in ``audit-head.json`` (tail removal)."""
    with _conn(data_dir) as conn:
        return audit.verify(conn, data_dir / audit.HEAD_FILE)


@dataclass(frozen=True, slots=True)
class ServerStats:
    users: int
    devices: int
    folders: int
    objects: int
    bytes: int
    head_moves: int
    audit_rows: int

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def stats(data_dir: Path, store_url: str | None = None) -> ServerStats:
    with _conn(data_dir) as conn:
        count = {
            # B608: table names from a fixed tuple
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # nosec B608
            for table in ("users", "devices", "folders", "head_log", "audit")
        }
        # the store's per-namespace stats are exact; sum over folders
        ids = [f.id for f in db.all_folders(conn)]
    with _store(data_dir, store_url) as store:
        per = [store.stats(ns) for ns in ids]
    return ServerStats(
        users=count["users"],
        devices=count["devices"],
        folders=count["folders"],
        objects=sum(s.objects for s in per),
        bytes=sum(s.bytes for s in per),
        head_moves=count["head_log"],
        audit_rows=count["audit"],
    )


def check(data_dir: Path, store_url: str | None = None) -> list[str]:
    """Problems found: unreadable/corrupt objects, missing head objects, audit chain."""
    return list(check_report(data_dir, store_url).problems)


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What ``check`` found; ``quarantined`` counts the objects a repair moved aside."""

    problems: tuple[str, ...]
    quarantined: int = 0


def check_report(
    data_dir: Path, store_url: str | None = None, *, repair: bool = False
) -> CheckReport:
    """``check``, or with ``repair`` ``check --repair``.

    A repair opens the object store as its writer, which lines packs up with the index
    (cutting unindexed tails, quarantining what shortened or missing packs lost), then
    quarantines every object whose digest does not match, and changes the storage epoch
    (:func:`chunksync_server.epoch.mark_repaired`) so that clients check the server's copy of
    their folder and re-upload what it lost. It refuses while another process (a
    running server) holds the store's writer lock: that process would keep serving its
    own view of the index. A running server quarantines what it reads damaged by itself.
    """
    problems: list[str] = []
    with _conn(data_dir) as conn:
        folders = db.all_folders(conn)
        chain = audit.verify(conn, data_dir / audit.HEAD_FILE)
    if not chain.ok:
        where = f"row {chain.first_bad}: " if chain.first_bad is not None else ""
        problems.append(f"audit log: {where}{chain.reason}")
    moved: list[object] = []
    opener = _repair_store if repair else _store
    with opener(data_dir, store_url, moved.append) as store:
        shared = getattr(store, "shared", False)  # several servers: the epoch is in the db
        problems.extend(store.check(repair=True) if repair else store.check())
        for f in folders:
            if f.head is not None and not store.has_many(f.id, [bytes.fromhex(f.head)]):
                problems.append(f"folder {f.name}: head {f.head[:12]} is not stored")
    if repair:
        epoch.mark_repaired(data_dir)
        with _conn(data_dir) as conn, db.transaction(conn):
            if shared:
                epoch.bump_shared_epoch(conn)
            _audit(conn, "admin.storage.repair", detail={"quarantined": len(moved)})
    return CheckReport(tuple(problems), len(moved))


@contextmanager
def _repair_store(
    data_dir: Path, store_url: str | None, on_damage: Callable[[Any], None]
) -> Iterator[Any]:
    """The object store opened as its writer, or UserError if another process is."""
    from .storage import open_store

    store = open_store(
        store_location(data_dir, store_url), on_damage=on_damage, meta=db_location(data_dir)
    )
    try:
        if getattr(store, "read_only", False):
            raise UserError(
                f"cannot repair {data_dir}: another process (a running server?) holds "
                "objects/writer.lock; stop it first"
            )
        yield store
    finally:
        store.close()
