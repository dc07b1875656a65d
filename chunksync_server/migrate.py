"""``chunksync-server migrate``: upgrade the metadata database with a way back.

No command upgrades the schema by itself: ``serve`` and the admin commands refuse an
older database with a message naming this command (:func:`chunksync_server.db.connect`),
so an upgrade happens once, on purpose, with the server stopped. ``migrate``:

1. takes the data directory's lock (:mod:`chunksync_server.datalock`): no server runs;
2. copies ``meta.db`` with SQLite's online backup API (a consistent copy, WAL
   included) to ``DATA/backups/meta-v<old>-<time>.db``, with the audit chain head file
   and a manifest (``.json``) noting the schema versions, the program version, the
   audit row count and the name and size of every file of the object store — the
   objects themselves are only ever added to by the server and are not copied;
3. applies the pending migrations (each in its own transaction) and audits it.

``migrate --rollback`` puts the newest backup back (SQLite's backup API again, so the
live file is replaced in one transaction), restores the audit head file, and audits
the rollback. Whatever the server recorded after the backup is lost (head moves,
new accounts, audit rows): clients whose head moved on then see the server's head go
back and refuse it as a rollback until they sync again, so ``--rollback`` asks for
``--yes`` when anything happened since. Objects uploaded since stay in the store.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import click

from chunksync.errors import UserError

from . import audit, db, dbversion
from .admin import CLI_ADDRESS
from .cli_common import confirm, data_option, friendly, version
from .datalock import DataDirLock

__all__ = ["Backup", "migrate", "register", "rollback"]

BACKUP_DIR = "backups"


@dataclass(frozen=True, slots=True)
class Backup:
    """A backup made before an upgrade: the database copy and its manifest."""

    db_path: Path
    manifest: dict[str, object]

    @property
    def manifest_path(self) -> Path:
        return self.db_path.with_suffix(".json")


@dataclass(frozen=True, slots=True)
class MigrateResult:
    old: int
    new: int
    backup: Backup | None


def _db_path(data_dir: Path) -> Path:
    path = data_dir / "meta.db"
    if not path.exists():
        raise UserError(f"no chunksync server data in {data_dir} (missing meta.db)")
    return path


def _store_files(data_dir: Path) -> list[dict[str, object]]:
    root = data_dir / "objects"
    if not root.is_dir():
        return []
    return [
        {"name": str(p.relative_to(root)), "size": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    ]


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # nosec B608


def _fsync_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _backup(data_dir: Path, conn: sqlite3.Connection, old: int) -> Backup:
    folder = data_dir / BACKUP_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder / f"meta-v{old}-{stamp}.db"
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    copy = sqlite3.connect(tmp)
    try:
        conn.backup(copy)
    finally:
        copy.close()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    head = data_dir / audit.HEAD_FILE
    if head.exists():
        shutil.copy2(head, target.with_suffix(".audit-head.json"))
    manifest: dict[str, object] = {
        "schema_from": old,
        "schema_to": db.SCHEMA_VERSION,
        "time": time.time(),
        "program_version": version(),
        "audit_rows": _count(conn, "audit"),
        "head_moves": _count(conn, "head_log") if old else 0,
        "store_files": _store_files(data_dir),
    }
    backup = Backup(target, manifest)
    _fsync_write(backup.manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return backup


def migrate(data_dir: Path) -> MigrateResult:
    """Back up, then upgrade the schema; nothing is written when it is current."""
    path = _db_path(data_dir)
    with DataDirLock(data_dir, "migrate"):
        conn = db.open_raw(path)
        try:
            old = dbversion.schema_version(conn)
            if old == db.SCHEMA_VERSION:
                return MigrateResult(old, old, None)
            if old > db.SCHEMA_VERSION:
                dbversion.require_current(old, db.SCHEMA_VERSION, path)
            backup = _backup(data_dir, conn, old)
            db.upgrade(conn)
            with db.transaction(conn):
                audit.append(
                    conn,
                    action="admin.migrate",
                    time=time.time(),
                    address=CLI_ADDRESS,
                    detail={"from": old, "to": db.SCHEMA_VERSION, "backup": backup.db_path.name},
                )
            db.anchor_audit(conn)
        finally:
            conn.close()
    return MigrateResult(old, db.SCHEMA_VERSION, backup)


def latest_backup(data_dir: Path) -> Backup:
    folder = data_dir / BACKUP_DIR
    found = sorted(folder.glob("meta-v*.db")) if folder.is_dir() else []
    if not found:
        raise UserError(f"no backup to roll back to in {folder} ('migrate' makes one)")
    newest = max(found, key=lambda p: p.stat().st_mtime_ns)
    try:
        manifest = json.loads(newest.with_suffix(".json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"backup {newest.name} has no readable manifest: {exc}") from exc
    return Backup(newest, manifest)


def changes_since(data_dir: Path, backup: Backup) -> tuple[int, list[str]]:
    """Audit rows a rollback would lose (besides the migrate row) and store files gone."""
    conn = db.open_raw(_db_path(data_dir))
    try:
        rows = _count(conn, "audit") - int(str(backup.manifest.get("audit_rows", 0))) - 1
    finally:
        conn.close()
    now = {f["name"] for f in _store_files(data_dir)}
    noted = backup.manifest.get("store_files", [])
    if not isinstance(noted, list):
        noted = []
    gone = [str(f["name"]) for f in noted if isinstance(f, dict) and f.get("name") not in now]
    return max(rows, 0), gone


def rollback(data_dir: Path, backup: Backup) -> None:
    """Replace the live database with ``backup`` (under the data directory lock)."""
    path = _db_path(data_dir)
    with DataDirLock(data_dir, "roll back"):
        source = sqlite3.connect(f"{backup.db_path.resolve().as_uri()}?mode=ro", uri=True)
        live = db.open_raw(path)
        try:
            source.backup(live)
        finally:
            source.close()
        try:
            saved_head = backup.db_path.with_suffix(".audit-head.json")
            head = data_dir / audit.HEAD_FILE
            if saved_head.exists():
                _fsync_write(head, saved_head.read_text())
            else:
                head.unlink(missing_ok=True)
            with db.transaction(live):
                audit.append(
                    live,
                    action="admin.migrate.rollback",
                    time=time.time(),
                    address=CLI_ADDRESS,
                    detail={
                        "backup": backup.db_path.name,
                        "schema": dbversion.schema_version(live),
                    },
                )
            db.anchor_audit(live)
        finally:
            live.close()


@click.command("migrate")
@data_option
@click.option("--rollback", "back", is_flag=True, help="put the newest backup back")
@click.option("--yes", is_flag=True, help="roll back even if the server recorded changes since")
@friendly
def migrate_cmd(data_dir: Path, back: bool, yes: bool) -> None:
    """Upgrade the metadata database after backing it up (the server must be stopped).

    With --rollback, restore the database from the newest backup instead.
    """
    if not back:
        result = migrate(data_dir)
        if result.backup is None:
            click.echo(f"metadata schema is current (v{result.new}); nothing to do")
        else:
            click.echo(
                f"metadata schema upgraded v{result.old} -> v{result.new}; backup "
                f"{result.backup.db_path} (undo with 'migrate --rollback')"
            )
        return
    backup = latest_backup(data_dir)
    lost, gone = changes_since(data_dir, backup)
    if gone:
        click.echo(f"note: {len(gone)} object store file(s) noted at the backup are gone", err=True)
    if lost:
        confirm(
            yes,
            f"the server recorded {lost} audited change(s) since the backup "
            "(they are lost by a rollback)",
        )
    rollback(data_dir, backup)
    click.echo(
        f"rolled back to {backup.db_path.name} (schema v{backup.manifest.get('schema_from')})"
    )


def register(main: click.Group) -> None:
    main.add_command(migrate_cmd)
