"""The command-line contract end to end: real server subprocess, several devices."""

from __future__ import annotations

import json
import os

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
