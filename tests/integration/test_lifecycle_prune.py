"""forget + prune end to end: a deleted 100 MB file's space comes back, kept snapshots
restore byte for byte, and ``check`` (server) and ``verify`` (client) still pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.devices import tree_of

MB = 1_000_000


def disk_usage(data: Path) -> int:
    """Bytes of the server's object files (packs and index)."""
    return sum(p.stat().st_size for p in (data / "objects").rglob("*") if p.is_file())


def server_admin(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chunksync_server", *args, "--data", str(data)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_forget_then_prune_gives_back_a_deleted_big_file(cli_world: CliWorld, tmp_path) -> None:
    w = cli_world
    a = w.folder("laptop")
    a.mkdir(parents=True)
    (a / "keep.txt").write_text("small and kept\n")
    w.init("laptop")
    b = w.join("desktop")
    (a / "big.bin").write_bytes(os.urandom(100 * MB))
    w.sync("laptop")
    (a / "big.bin").unlink()
    (a / "keep.txt").write_text("small and kept, second version\n")
    w.sync("laptop")
    w.sync("desktop")  # the desktop now bases on the head without the big file
    before = disk_usage(w.server.data_dir)
    assert before > 100 * MB

    dry = json.loads(
        w.run("laptop", "forget", str(a), "--keep-last", "1", "--dry-run", "--json").output
    )
    # oldest first: the first sync (the desktop was shown it when it joined: it may
    # still base on it), the one with the big file, the head
    first, big, head = dry["snapshots"]
    assert big["action"] == "forget" and big["reasons"] == ["matches no --keep option"]
    assert head["action"] == "keep" and "last" in head["reasons"]
    assert "current head" in head["reasons"]
    assert first["action"] == "keep" and first["reasons"][0].startswith("a base of device")
    assert disk_usage(w.server.data_dir) == before  # a dry run changes nothing

    w.run("laptop", "forget", str(a), "--keep-last", "1")
    out = json.loads(w.run("laptop", "prune", str(a), "--json").output)
    after = disk_usage(w.server.data_dir)
    assert before - after >= 95 * MB, (before, after, out)
    assert out["deleted"] > 0 and out["packs_rewritten"] >= 1

    # the kept snapshot restores byte for byte; the history is still one chain
    log = json.loads(w.run("laptop", "log", str(a), "--json").output)
    assert len(log) == 3  # forgotten snapshots stay in the verified history
    restored = tmp_path / "restored"
    w.run("laptop", "restore", str(a), "--snapshot", log[-1]["id"], "--to", str(restored))
    assert tree_of(restored) == tree_of(a)
    assert server_admin(w.server.data_dir, "check").returncode == 0
    assert "verified" in w.run("laptop", "verify", str(a)).output
    assert "verified" in w.run("desktop", "verify", str(b)).output

    # both devices keep syncing after the prune
    (b / "after.txt").write_text("written after the prune\n")
    w.sync("desktop")
    w.sync("laptop")
    assert (a / "after.txt").read_text() == "written after the prune\n"
    stats = server_admin(w.server.data_dir, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    (row,) = json.loads(stats.stdout)["per_folder"]
    assert row["last_prune"]["deleted"] == out["deleted"] and row["forgotten_snapshots"] == 1
    assert row["dead_bytes"] < 5 * MB < 100 * MB < before - row["live_bytes"]
    text = server_admin(w.server.data_dir, "stats").stdout
    assert "folder docs\tlive " in text and "last prune" in text
