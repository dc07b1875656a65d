"""``chunksync-server migrate`` backs up before it upgrades and can roll back; no
command upgrades by itself; an older program meeting a newer database refuses."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from chunksync_server import db
from chunksync_server.__main__ import main
from chunksync_server.sqldialect import split_script
from tests.helpers.server import create_user

pytestmark = pytest.mark.integration

OLD = db.SCHEMA_VERSION - 1


def run(data: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, [*args, "--data", str(data)])
    assert result.exit_code == code, (args, result.output, result.stderr)
    return result.output if code == 0 else result.stderr.strip()


def old_server_data(data: Path) -> None:
    """A data directory as the previous release left it: schema OLD, one user."""
    data.mkdir(mode=0o700)
    conn = db.open_raw(data / "meta.db")
    for number in range(OLD):
        for statement in split_script(db.MIGRATIONS[number]):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={OLD}")
    conn.execute("INSERT INTO users (name, pw_hash, created) VALUES ('bob', 'x', 0)")
    conn.close()
    (data / "objects").mkdir()
    (data / "objects" / "pack-0001.pack").write_bytes(b"p" * 10)


def test_commands_refuse_an_older_schema_and_migrate_backs_up_then_upgrades(
    tmp_path: Path,
) -> None:
    data = tmp_path / "srv"
    old_server_data(data)
    refused = run(data, "user", "list", code=2)
    assert refused == (
        f"chunksync-server: metadata schema v{OLD} in {data / 'meta.db'} is older than this "
        f"server (v{db.SCHEMA_VERSION}): run 'chunksync-server migrate --data {data}' "
        "(it backs up first)"
    )
    serve = run(data, "serve", "--port", "0", code=2)
    assert serve.startswith(f"chunksync-server: metadata schema v{OLD} in")
    out = run(data, "migrate")
    assert out.startswith(f"metadata schema upgraded v{OLD} -> v{db.SCHEMA_VERSION}; backup ")
    (backup,) = (data / "backups").glob("meta-v*.db")
    manifest = json.loads(backup.with_suffix(".json").read_text())
    assert manifest["schema_from"] == OLD and manifest["schema_to"] == db.SCHEMA_VERSION
    assert manifest["store_files"] == [{"name": "pack-0001.pack", "size": 10}]
    assert (backup.stat().st_mode & 0o777) == 0o600
    with sqlite3.connect(backup) as copy:
        assert copy.execute("PRAGMA user_version").fetchone()[0] == OLD
        assert copy.execute("SELECT name FROM users").fetchall() == [("bob",)]
    assert run(data, "user", "list").startswith("bob\tuser")
    assert (
        run(data, "migrate")
        == f"metadata schema is current (v{db.SCHEMA_VERSION}); nothing to do\n"
    )
    assert "admin.migrate" in run(data, "audit")
    assert "audit chain ok" in run(data, "audit", "--verify")


def test_rollback_puts_the_backup_back_and_asks_when_changes_would_be_lost(
    tmp_path: Path,
) -> None:
    data = tmp_path / "srv"
    old_server_data(data)
    assert run(data, "migrate", "--rollback", code=2) == (
        f"chunksync-server: no backup to roll back to in {data / 'backups'} ('migrate' makes one)"
    )
    run(data, "migrate")
    create_user(data, "carol")  # a change after the upgrade: a rollback loses it
    refused = run(data, "migrate", "--rollback", code=2)
    assert refused == (
        "chunksync-server: the server recorded 1 audited change(s) since the backup (they "
        "are lost by a rollback): refused without --yes (stdin is not a terminal)"
    )
    out = run(data, "migrate", "--rollback", "--yes")
    assert out.startswith("rolled back to meta-v") and out.endswith(f"(schema v{OLD})\n")
    with sqlite3.connect(data / "meta.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == OLD
        assert conn.execute("SELECT name FROM users").fetchall() == [("bob",)]
    assert run(data, "user", "list", code=2).startswith(f"chunksync-server: metadata schema v{OLD}")
    run(data, "migrate")  # upgrading again works, and the audit chain holds throughout
    assert "audit chain ok" in run(data, "audit", "--verify")
    actions = run(data, "audit")
    assert "admin.migrate.rollback" in actions


def test_an_older_program_meeting_a_newer_database_refuses(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    create_user(data, "bob")
    with sqlite3.connect(data / "meta.db") as conn:
        conn.execute(f"PRAGMA user_version={db.SCHEMA_VERSION + 1}")
    expected = (
        f"chunksync-server: metadata schema v{db.SCHEMA_VERSION + 1} in {data / 'meta.db'} is "
        f"newer than this server (v{db.SCHEMA_VERSION}): run the newer chunksync-server, or go "
        "back with 'chunksync-server migrate --rollback'"
    )
    assert run(data, "user", "list", code=2) == expected
    assert run(data, "serve", "--port", "0", code=2) == expected
    assert run(data, "migrate", code=2) == expected
    assert run(tmp_path / "empty", "migrate", code=2) == (
        f"chunksync-server: no chunksync server data in {tmp_path / 'empty'} (missing meta.db)"
    )
