"""Unattended for months: device tokens are renewed before they expire, and a revoked
device says so and stops retrying (real server subprocess with a 10 s token lifetime,
real daemons sharing one credentials file)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync.crypto import keyslots
from tests.helpers.cli_setup import CliWorld
from tests.helpers.daemons import REPO, DaemonProcess, read_or_none, wait_until
from tests.helpers.server import DEFAULT_USER, ServerProcess, create_user

LIFETIME = 10.0  # long enough for the set-up on a loaded 2-core machine


@pytest.fixture
def short_token_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliWorld]:
    monkeypatch.setattr(keyslots, "DEFAULT_PARAMS", keyslots.TEST_PARAMS)
    monkeypatch.setattr(keyslots, "MIN_PARAMS", keyslots.TEST_PARAMS)
    data = tmp_path / "server"
    data.mkdir()
    create_user(data, DEFAULT_USER)
    with ServerProcess(data, "--token-lifetime", str(LIFETIME)) as proc:
        yield CliWorld(proc, tmp_path)


def credentials(w: CliWorld, device: str) -> dict[str, object]:
    doc = json.loads((w.home(device) / "credentials.json").read_text())
    return dict(doc["servers"][w.url])


def problems(*daemons: DaemonProcess) -> list[dict[str, object]]:
    return [e for d in daemons for e in d.events() if e["event"] in ("offline", "revoked", "error")]


def test_daemons_sharing_one_login_keep_syncing_across_token_expiries(
    short_token_world: CliWorld,
) -> None:
    w = short_token_world
    a = w.init("laptop")
    # a second folder under the same login: two daemons renew one credentials file
    second = w.base / "folders" / "laptop-notes"
    w.run("laptop", "init", str(second), "--folder", "notes")
    b = w.join("desktop")
    first_token = credentials(w, "laptop")["token"]
    assert credentials(w, "laptop")["expires_at"] is not None

    notes = DaemonProcess(w, "laptop")
    notes.root, notes.log_path = second, w.base / "daemon-laptop-notes.log"
    with DaemonProcess(w, "laptop") as da, DaemonProcess(w, "desktop") as db, notes:
        for d in (da, db, notes):
            d.wait_ready()
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < 3.2 * LIFETIME:
            n += 1
            (a / f"edit-{n}.txt").write_text(f"edit {n} from the laptop")
            (second / f"note-{n}.txt").write_text(f"note {n}")
            wait_until(
                lambda n=n: (
                    read_or_none(b / f"edit-{n}.txt") == f"edit {n} from the laptop".encode()
                ),
                what=f"edit {n} on the desktop",
            )
            time.sleep(1.0)  # let the clock run across several token lifetimes
        (b / "reply.txt").write_text("from the desktop")
        wait_until(
            lambda: read_or_none(a / "reply.txt") == b"from the desktop", what="reply on the laptop"
        )
        notes.wait_at_head()
        for d in (da, db, notes):
            assert d.status()["state"] in ("idle", "syncing", "scanning", "waiting"), d.log_tail()
        assert problems(da, db, notes) == []
    assert n >= 5
    assert credentials(w, "laptop")["token"] != first_token  # renewed, and written back


def test_revoked_device_says_revoked_and_the_daemon_stops(short_token_world: CliWorld) -> None:
    w = short_token_world
    a = w.init("laptop")
    device_id = credentials(w, "laptop")["device_id"]
    with DaemonProcess(w, "laptop") as da:
        da.wait_ready()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "chunksync_server",
                "device",
                "revoke",
                str(device_id),
                "--data",
                str(w.server.data_dir),
            ],
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=30,
        )
        (a / "after.txt").write_text("written after the revocation")
        assert da.proc is not None
        rc = da.proc.wait(timeout=30)
        da.proc = None
        assert rc == 11, da.log_tail()
        revoked = da.events("revoked")
        assert len(revoked) == 1 and "login" in str(revoked[0]["message"])
        assert not da.events("offline")
        assert "no folder left to sync" in da.log_tail()

    status = json.loads(w.run("laptop", "status", str(a), "--json").output)
    assert status["state"] == "revoked" and "revoked" in status["last_error"]
    assert "state: revoked" in w.run("laptop", "status", str(a)).output
    result = w.run("laptop", "sync", str(a), ok=False)
    assert result.exit_code == 11
    assert result.output.count("\n") == 1 and "chunksync login" in result.output
    assert "Traceback" not in result.output
