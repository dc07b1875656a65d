"""Daemons under faults: the server goes away, a daemon is SIGKILLed, a file keeps growing."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from chunksync import history
from chunksync.folder import SyncFolder
from chunksync.sync.objects_io import ObjectReader
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.daemons import FAST, DaemonProcess, read_or_none, wait_until
from tests.helpers.devices import tree_of


def test_offline_edits_on_both_sides_converge_after_the_server_returns(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "shared.txt").write_text("base")
    w.sync("laptop")
    b = w.join("desktop")
    with DaemonProcess(w, "laptop") as da, DaemonProcess(w, "desktop") as db:
        da.wait_ready()
        db.wait_ready()
        port = w.server.port
        w.server.stop()

        (a / "only-a.txt").write_text("written offline on A")
        (b / "only-b.txt").write_text("written offline on B")
        (a / "shared.txt").write_text("A's offline edit")
        (b / "shared.txt").write_text("B's offline edit")
        for d in (da, db):
            status = wait_until(
                lambda d=d: (s := d.status())["state"] == "offline" and s, what="offline"
            )
            assert status["last_error"] and not status["at_head"]

        w.server.extra_args = ("--port", str(port))
        w.server.start()
        wait_until(
            lambda: (b / "only-a.txt").exists() and (a / "only-b.txt").exists(), 30, what="exchange"
        )
        da.wait_at_head(30)
        db.wait_at_head(30)
        wait_until(
            lambda: tree_of(a, mtimes=False) == tree_of(b, mtimes=False), what="identical trees"
        )
        tree = tree_of(a, mtimes=False)
        contents = sorted(v[1] for v in tree.values())
        # nothing lost: both offline edits survive, one under the name, one as a conflicted copy
        assert b"A's offline edit" in contents and b"B's offline edit" in contents
        assert any("conflicted copy" in name for name in tree)
        # the copy is an open conflict on every device, as `chunksync conflicts` lists it
        wait_until(lambda: da.status()["conflicts"] == db.status()["conflicts"] == 1, what="1 each")
        conflict_logs = da.events("conflict") + db.events("conflict")
        assert len(conflict_logs) <= 1 and all(e["path"] == "shared.txt" for e in conflict_logs)
        assert da.events("offline") and db.events("offline")


def test_sigkill_in_mid_sync_then_restart_converges(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    b = w.join("desktop")
    big = os.urandom(40 << 20)
    with DaemonProcess(w, "laptop") as da:
        da.wait_ready()
        (a / "big.bin").write_bytes(big)
        for i in range(50):
            (a / f"small-{i}.txt").write_text(f"small {i}")
        da.wait_at_head(60)
        db = DaemonProcess(w, "desktop").start()
        try:
            wait_until(
                lambda: db.ask("status") is not None and db.status()["state"] == "syncing",
                30,
                interval=0.01,
                what="B mid-sync",
            )
            db.kill()
            # no partial file is ever visible under a final name
            assert read_or_none(b / "big.bin") in (None, big)
            db.start()
            wait_until(lambda: read_or_none(b / "big.bin") == big, 60, what="big file on B")
            db.wait_at_head(30)
        finally:
            db.kill()
    assert tree_of(a, mtimes=False) == tree_of(b, mtimes=False)
    assert list((b / ".chunksync" / "tmp").iterdir()) == []


def snapshot_versions(root: Path, path: str, out: Path) -> list[bytes]:
    """The content of ``path`` in every snapshot that holds it, oldest first."""

    async def go() -> list[bytes]:
        async with SyncFolder.open(root) as f:
            reader = ObjectReader(f.keys, f.index, f.store)
            found = []
            for i, snap in enumerate(await history.list_snapshots(reader)):
                target = out / str(i)
                try:
                    await history.restore(reader, snap, [path], target)
                except Exception:
                    continue
                if (target / path).exists():
                    found.append((target / path).read_bytes())
            return found

    return asyncio.run(go())


def test_growing_file_snapshots_only_hold_prefixes(
    cli_world: CliWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the settle window off (``--settle-ms 0``; by default a file still being written
    waits, see test_settle_daemon.py), the daemon syncs while the file grows, and every
    snapshot holds a consistent read: a prefix, never a torn version."""
    w = cli_world
    a = w.init("laptop")
    b = w.join("desktop")
    no_settle = (*FAST, "--settle-ms", "0")
    with (
        DaemonProcess(w, "laptop", *no_settle) as da,
        DaemonProcess(w, "desktop", *no_settle) as db,
    ):
        da.wait_ready()
        db.wait_ready()
        final = b""
        with open(a / "growing.log", "ab") as fh:
            for i in range(50):  # every 100 ms for 5 s: the workload, not a wait
                line = f"line {i:03d} {'x' * (i * 37 % 200)}\n".encode()
                fh.write(line)
                fh.flush()
                final += line
                time.sleep(0.1)
        wait_until(lambda: read_or_none(b / "growing.log") == final, 30, what="final content on B")
        da.wait_at_head()
        db.wait_at_head()
    monkeypatch.setenv("CHUNKSYNC_HOME", str(w.home("laptop")))
    versions = snapshot_versions(a, "growing.log", tmp_path / "restored")
    assert len(versions) >= 2, "the daemon should have synced while the file grew (max delay)"
    assert all(final.startswith(v) for v in versions)
    assert versions[-1] == final
