"""Controlling a daemon: the transfer gate, the control socket, pause/resume/sync-now."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from chunksync.config import FolderPaths
from chunksync.control import (
    ControlServer,
    FolderStatus,
    GatedChunkStore,
    TransfersPaused,
    parse_request,
)
from chunksync.daemon import clock_skew, reconnect_delay
from chunksync.service import install_service, launchd_plist, systemd_unit
from chunksync.status import ask_daemon
from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.daemons import DaemonProcess, read_or_none, wait_until
from tests.helpers.devices import tree_of


class SlowStore(MemoryChunkStore):
    """A store whose downloads hang until released, to catch a transfer in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()

    async def get_many(self, ids):  # type: ignore[no-untyped-def]
        self.started.set()
        await asyncio.Event().wait()


async def test_closing_the_gate_ends_in_flight_transfers_at_once() -> None:
    gate = GatedChunkStore(SlowStore())
    call = asyncio.ensure_future(gate.get_many([]))
    await gate.inner.started.wait()  # type: ignore[attr-defined]
    gate.close()
    with pytest.raises(TransfersPaused, match="paused"):
        await asyncio.wait_for(call, 1.0)
    with pytest.raises(TransfersPaused):
        await gate.get_head()
    gate.open()
    assert (await gate.get_head()).head is None


async def test_control_socket_round_trip_and_mode(tmp_path: Path) -> None:
    paths = FolderPaths(tmp_path)
    paths.state.mkdir(mode=0o700)
    paths.config.write_text("{}")
    seen: list[str] = []

    async def handler(command: str) -> dict[str, Any]:
        seen.append(command)
        return FolderStatus("docs", "laptop", state="syncing").to_json()

    server = ControlServer(paths.socket, handler)
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(paths.socket).st_mode) == 0o600
        reply = await asyncio.to_thread(ask_daemon, paths, "status")
        assert reply is not None and reply["state"] == "syncing" and reply["at_head"] is False
        bad = await asyncio.to_thread(ask_daemon, paths, "reboot")
        assert bad is not None and "unknown command" in bad["error"]
        assert seen == ["status"]
    finally:
        await server.close()
    assert not paths.socket.exists()
    assert ask_daemon(paths, "status") is None  # no daemon: callers fall back to the index


def test_pure_helpers() -> None:
    assert parse_request(b'{"command": "sync-now"}\n') == "sync-now"
    with pytest.raises(ValueError, match="not JSON"):
        parse_request(b"status")
    assert reconnect_delay(0, 1.0, 60.0, 0.0) == 0.5
    assert reconnect_delay(10, 1.0, 60.0, 1.0) == 60.0
    assert clock_skew(1000.0, 1002.0, "Thu, 01 Jan 1970 00:16:40 GMT") == pytest.approx(1.0)
    status = FolderStatus("docs", "laptop", head="ab", server_head="ab", paused=True)
    doc = status.to_json()
    assert doc["state"] == "paused" and doc["at_head"] is True
    json.dumps(doc)


def test_service_files(tmp_path: Path) -> None:
    unit = systemd_unit(["/usr/bin/chunksync", "daemon", "/home/me/My Docs"], home="/home/me/.cs")
    assert "ExecStart=/usr/bin/chunksync daemon '/home/me/My Docs'" in unit
    assert "Environment=CHUNKSYNC_HOME=/home/me/.cs" in unit and "WantedBy=default.target" in unit
    plist = launchd_plist(["/usr/bin/chunksync", "daemon", "/Users/me/a&b"], tmp_path)
    assert "<string>/Users/me/a&amp;b</string>" in plist and "<key>KeepAlive</key>" in plist
    message = install_service([tmp_path], platform="linux", home=tmp_path)
    written = tmp_path / ".config" / "systemd" / "user" / "chunksync.service"
    if "XDG_CONFIG_HOME" not in os.environ:
        assert written.read_text().startswith("[Unit]") and "systemctl --user" in message


def test_pause_resume_and_sync_now(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    b = w.join("desktop")
    with DaemonProcess(w, "laptop") as da, DaemonProcess(w, "desktop") as db:
        da.wait_ready()
        db.wait_ready()
        big = os.urandom(48 << 20)
        (a / "big.bin").write_bytes(big)
        # catch the round in flight if we can; pausing must stop it within a second either way
        try:
            wait_until(lambda: da.status()["state"] == "syncing", 10, interval=0.01)
        except AssertionError:
            pass
        out = w.run("laptop", "pause", str(a)).output
        assert "paused" in out
        wait_until(
            lambda: not da.status()["round_active"], 1.0, interval=0.02, what="round to stop"
        )
        status = da.status()
        assert status["state"] == "paused" and status["transfers_in_flight"] == 0
        (a / "while-paused.txt").write_text("queued")
        head = status["head"]
        assert json.loads(w.run("laptop", "status", str(a), "--json").output)["state"] == "paused"

        reply = da.ask("sync-now")
        assert reply is not None and "paused" in reply["error"]
        assert da.status()["head"] == head  # nothing pushed while paused

        assert "resumed" in w.run("laptop", "resume", str(a)).output
        wait_until(
            lambda: read_or_none(b / "while-paused.txt") == b"queued", what="queued file on B"
        )
        wait_until(lambda: read_or_none(b / "big.bin") == big, 60, what="big file on B")
        big = b""  # free the 48 MiB

        # sync-now forces a round even when nothing told the daemon about a change
        before = db.status()["last_sync"]
        assert da.ask("sync-now") == {"message": "sync started"}
        assert db.ask("sync-now") == {"message": "sync started"}
        wait_until(lambda: db.status()["last_sync"] != before, what="forced round on B")
        assert db.wait_at_head()["pending_changes"] == 0
        da.wait_at_head()
        assert tree_of(a, mtimes=False) == tree_of(b, mtimes=False)
        assert len(tree_of(a)) == 2


def test_one_shot_sync_while_a_daemon_runs_delegates_to_it(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    with DaemonProcess(w, "laptop") as da:
        da.wait_ready()
        result = w.run("laptop", "sync", str(a))
        assert result.exit_code == 0
        assert "asked it to sync now" in result.output
