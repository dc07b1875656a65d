"""The command-line contract end to end: real server subprocess, several devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from chunksync.config import load_credential
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.transport import http
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.devices import tree_of


def test_two_devices_sync_log_restore_verify(cli_world: CliWorld, tmp_path) -> None:
    w = cli_world
    a = w.folder("laptop")
    a.mkdir(parents=True)
    (a / "report.txt").write_text("v1")
    (a / "bin").mkdir()
    (a / "bin" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (a / "bin" / "run.sh").chmod(0o755)
    (a / "empty").mkdir()
    os.symlink("report.txt", a / "latest")
    w.init("laptop")
    b = w.join("desktop")
    assert tree_of(a) == tree_of(b)

    (b / "report.txt").write_text("v2 from desktop")
    w.sync("desktop")
    w.sync("laptop")
    assert (a / "report.txt").read_text() == "v2 from desktop"

    log = json.loads(w.run("laptop", "log", str(a), "--json").output)
    assert [e["device"] for e in log] == ["laptop", "desktop"]
    first = log[0]["id"]

    out = tmp_path / "restored"
    w.run("laptop", "restore", str(a), "--snapshot", first[:10], "--to", str(out))
    assert (out / "report.txt").read_text() == "v1"
    assert os.readlink(out / "latest") == "report.txt"
    assert (out / "bin" / "run.sh").stat().st_mode & 0o111
    single = tmp_path / "single"
    w.run("laptop", "restore", str(a), "--snapshot", first, "bin/run.sh", "--to", str(single))
    assert sorted(p.name for p in single.rglob("*")) == ["bin", "run.sh"]

    history = json.loads(w.run("laptop", "log", str(a), "report.txt", "--json").output)
    assert [h["change"] for h in history] == ["added", "modified"]

    assert "verified" in w.run("laptop", "verify", str(a)).output


def test_conflict_listed_and_resolved(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "notes.txt").write_text("base")
    w.sync("laptop")
    b = w.join("desktop")
    (a / "notes.txt").write_text("laptop's edit")
    (b / "notes.txt").write_text("desktop's edit")
    w.sync("laptop")
    w.sync("desktop")
    rows = json.loads(w.run("desktop", "conflicts", str(b), "--json").output)
    assert len(rows) == 1 and rows[0]["path"] == "notes.txt"
    copy = rows[0]["copy_path"]
    assert (b / copy).read_text() == "desktop's edit"
    assert (b / "notes.txt").read_text() == "laptop's edit"
    w.run("desktop", "resolve", str(b), "notes.txt", "--keep", "mine")
    assert (b / "notes.txt").read_text() == "desktop's edit"
    assert not (b / copy).exists()
    w.sync("laptop")
    assert tree_of(a, mtimes=False) == tree_of(b, mtimes=False)
    for device, folder in (("laptop", a), ("desktop", b)):
        status = json.loads(w.run(device, "status", str(folder), "--json").output)
        assert status["local_changes_pending"] is False
    # what laptop pulled is not journaled as a local change by its next scan
    journal = json.loads(w.run("laptop", "log", str(a), "--events", "--json").output)
    w.sync("laptop")
    assert json.loads(w.run("laptop", "log", str(a), "--events", "--json").output) == journal


def test_wrong_passphrase_is_one_line_and_writes_nothing(cli_world: CliWorld) -> None:
    w = cli_world
    w.init("laptop")
    w.login("desktop")
    target = w.folder("desktop")
    result = w.run("desktop", "join", str(target), "--folder", "docs", ok=False, passphrase="nope")
    assert result.exit_code != 0
    assert "wrong passphrase" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (target / ".chunksync").exists()


def _one_line_failure(result) -> str:
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_unreachable_server_fails_in_one_line_and_keeps_files(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "draft.txt").write_text("unsynced work")
    w.server.stop()
    # keep the retry short: the default policy waits up to two minutes
    original = http.RetryPolicy.__init__

    def quick(self, *args, **kw):  # type: ignore[no-untyped-def]
        kw.setdefault("deadline", 1.0)
        kw.setdefault("base_delay", 0.01)
        original(self, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(http.RetryPolicy, "__init__", quick)
        line = _one_line_failure(w.run("laptop", "sync", str(a), ok=False))
    assert "chunksync:" in line
    assert (a / "draft.txt").read_text() == "unsynced work"
    status = json.loads(w.run("laptop", "status", str(a), "--json").output)
    assert status["local_changes_pending"] is True
    journal = json.loads(w.run("laptop", "log", str(a), "--events", "--json").output)
    assert {"path": "draft.txt", "change": "added", "device": "laptop"}.items() <= journal[
        -1
    ].items()


def test_revoked_device_is_refused(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "keep.txt").write_text("mine")
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "chunksync_server",
            "device",
            "list",
            "--data",
            str(w.server.data_dir),
            "--json",
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    devices = json.loads(listing.stdout)
    laptop = [d for d in devices if d["name"] == "laptop"]
    assert laptop
    subprocess.run(
        [
            sys.executable,
            "-m",
            "chunksync_server",
            "device",
            "revoke",
            str(laptop[0]["id"]),
            "--data",
            str(w.server.data_dir),
        ],
        capture_output=True,
        check=True,
    )
    line = _one_line_failure(w.run("laptop", "sync", str(a), ok=False))
    assert "revoked" in line or "401" in line or "token" in line
    assert (a / "keep.txt").read_text() == "mine"


def test_verify_reports_a_local_difference(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "data.bin").write_bytes(os.urandom(100_000))
    w.sync("laptop")
    assert w.run("laptop", "verify", str(a)).exit_code == 0
    with open(a / "data.bin", "r+b") as f:
        f.seek(50_000)
        f.write(b"X")
    result = w.run("laptop", "verify", str(a), ok=False)
    assert result.exit_code != 0
    assert "content differs locally: data.bin" in result.output


def test_secrets_are_private_and_never_printed(
    cli_world: CliWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = cli_world
    a = w.init("laptop")
    creds = w.home("laptop") / "credentials.json"
    for path in (creds, a / ".chunksync" / "key", a / ".chunksync" / "config.json"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert (a / ".chunksync").stat().st_mode & 0o777 == 0o700
    token = json.loads(creds.read_text())["servers"][w.url]["token"]
    outputs = [w.run("laptop", *cmd, str(a)).output for cmd in (["status"], ["sync"], ["log"])]
    assert not any(token in out for out in outputs)
    monkeypatch.setenv("CHUNKSYNC_HOME", str(w.home("laptop")))
    assert token not in repr(load_credential(w.url))
    master = (a / ".chunksync" / "key").read_bytes()
    assert master.hex() not in repr(FolderKeys(master))


def test_last_write_wins_loser_is_listed_and_restorable(cli_world: CliWorld, tmp_path) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "app.log").write_text("start")
    w.sync("laptop")
    b = w.join("desktop")
    config = json.loads((b / ".chunksync" / "config.json").read_text())
    config["policies"] = {"*.log": "last-write-wins"}
    (b / ".chunksync" / "config.json").write_text(json.dumps(config))
    (a / "app.log").write_text("newer, laptop")
    os.utime(a / "app.log", (2_000_000_000, 2_000_000_000))
    (b / "app.log").write_text("older, desktop")
    os.utime(b / "app.log", (1_900_000_000, 1_900_000_000))
    w.sync("laptop")
    w.sync("desktop")
    assert (b / "app.log").read_text() == "newer, laptop"
    rows = json.loads(w.run("desktop", "conflicts", str(b), "--json").output)
    assert [r["policy"] for r in rows] == ["last-write-wins"]
    command = rows[0]["explanation"].split("To get it back: ")[1].split()
    out = tmp_path / "lost"
    w.run("desktop", *command[1:-1], str(out))
    assert (out / "app.log").read_text() == "older, desktop"


def test_change_passphrase(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "f.txt").write_text("data")
    w.sync("laptop")
    bad = w.run(
        "laptop", "change-passphrase", str(a), ok=False, passphrase="not it", new_passphrase="x"
    )
    assert bad.exit_code != 0 and "wrong passphrase" in bad.output
    w.run("laptop", "change-passphrase", str(a), new_passphrase="brand new phrase")
    w.login("desktop")
    old = w.run("desktop", "join", str(w.folder("desktop")), "--folder", "docs", ok=False)
    assert "wrong passphrase" in old.output
    w.run(
        "desktop",
        "join",
        str(w.folder("desktop")),
        "--folder",
        "docs",
        passphrase="brand new phrase",
    )
    assert (w.folder("desktop") / "f.txt").read_text() == "data"
    assert "in sync" in w.sync("laptop").output  # the laptop's local key still works


def test_unexpected_failures_are_one_line_too(
    cli_world: CliWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = cli_world
    a = w.init("laptop")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("chunksync.status.read_status", broken)
    result = w.run("laptop", "status", str(a), ok=False)
    assert result.exit_code == 70
    assert result.output.strip().splitlines() == [
        "chunksync: internal error (RuntimeError: boom); run again with CHUNKSYNC_DEBUG=1 for details"
    ]

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(a / "unreadable"))

    monkeypatch.setattr("chunksync.status.read_status", denied)
    result = w.run("laptop", "status", str(a), ok=False)
    assert result.exit_code == 1 and "Permission denied" in result.output
