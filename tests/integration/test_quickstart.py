"""The README's main-job command runs end to end on loopback (without the daemon's
endless foreground part, which the daemon tests cover)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_quickstart_sets_up_server_user_and_synced_folder(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = {
        **os.environ,
        "CHUNKSYNC_DEMO": str(demo),
        "CHUNKSYNC_PORT": str(_free_port()),
        "CHUNKSYNC_QUICKSTART_NO_DAEMON": "1",
    }
    for run in range(2):  # a second run reuses what the first one made
        proc = subprocess.run(
            [str(REPO / "scripts" / "quickstart.sh")],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "Add a second device" in proc.stdout
    assert (demo / "Sync" / ".chunksync" / "config.json").exists()
    assert (demo / "password").stat().st_mode & 0o077 == 0
    assert "is now synced" not in proc.stdout  # the second run synced the existing folder
