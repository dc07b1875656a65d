"""Two ``chunksync daemon`` subprocesses on two folders with one real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from chunksync.config import load_credential
from chunksync.transport.http import HttpClient
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.daemons import REPO, DaemonProcess, read_or_none, wait_until
from tests.helpers.devices import tree_of


def head_log_devices(w: CliWorld, device: str, folder: str = "docs") -> list[str]:
    """Device ids of every head move on the server, oldest first."""
    import os

    os.environ["CHUNKSYNC_HOME"] = str(w.home(device))
    try:
        cred = load_credential()
    finally:
        del os.environ["CHUNKSYNC_HOME"]

    async def go() -> list[str]:
        client = HttpClient(cred.server, cred.token)
        try:
            return [e.device for e in await client.folder(folder).head_log()]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_edits_propagate_both_ways_without_echo_snapshots(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    b = w.join("desktop")
    with DaemonProcess(w, "laptop") as da, DaemonProcess(w, "desktop") as db:
        da.wait_ready()
        db.wait_ready()
        snapshots_before = len(head_log_devices(w, "laptop"))

        (a / "notes").mkdir()
        (a / "notes" / "one.txt").write_text("from the laptop")
        (a / "top.txt").write_text("top")
        wait_until(
            lambda: read_or_none(b / "notes" / "one.txt") == b"from the laptop", what="one.txt on B"
        )
        wait_until(lambda: read_or_none(b / "top.txt") == b"top", what="top.txt on B")

        (b / "notes" / "one.txt").write_text("edited on the desktop")
        (b / "notes" / "one.txt.bak").write_text("x")
        wait_until(
            lambda: read_or_none(a / "notes" / "one.txt") == b"edited on the desktop",
            what="edit on A",
        )
        wait_until(lambda: (a / "notes" / "one.txt.bak").exists(), what="new file on A")

        (a / "top.txt").unlink()
        wait_until(lambda: not (b / "top.txt").exists(), what="delete on B")

        da.wait_at_head()
        db.wait_at_head()
        assert tree_of(a, mtimes=False) == tree_of(b, mtimes=False)
        # three edit bursts, three runs of snapshots (a loaded machine may split a burst
        # once a file is closed, chunksync.watcher CLOSED_QUIET): the files each daemon
        # applied came back to it as watcher events, were rescanned, matched the stat
        # cache and made no snapshot of their own.
        devices = head_log_devices(w, "laptop")[snapshots_before:]
        runs = [d for i, d in enumerate(devices) if i == 0 or devices[i - 1] != d]
        assert len(runs) == 3 and runs[0] == runs[2] != runs[1], devices
        assert len(devices) <= 6, devices  # never more snapshots than paths edited
        status = da.status()
        assert status["conflicts"] == 0 and status["bytes_up"] > 0 and status["last_error"] is None
        assert status["clock_skew"] is not None and abs(status["clock_skew"]) < 5  # same host

        # one daemon per folder
        second = subprocess.run(
            [sys.executable, "-m", "chunksync.cli", "daemon", str(a)],
            cwd=REPO,
            env=da.env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and "already running" in second.stderr

        # SIGTERM: clean exit, socket removed, no temp leftovers
        assert da.terminate() == 0
        assert not (a / ".chunksync" / "control.sock").exists()
        assert list((a / ".chunksync" / "tmp").iterdir()) == []
        assert [e["event"] for e in da.events()][-1] == "stopped"
