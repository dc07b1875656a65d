"""chunksync as the suite drives it: a real server subprocess and the real CLI, per device.

Each timed step is the installed ``chunksync`` console script in its own process (as a user
runs it), with its own ``CHUNKSYNC_HOME`` per device and the secrets in the environment.
The server is ``python -m chunksync_server serve`` on loopback with its production settings
(durability on); only the account's login hash is cheap, which no timed step pays. The
folder passphrase is wrapped with the production KDF, so ``join`` pays it, as restic's
``restore`` pays its own.

:class:`ChunksyncWorld` also offers ``folder()``/``home()``/``base`` so that
:class:`tests.helpers.daemons.DaemonProcess` can run daemons in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Self

from tests.helpers.daemons import DaemonProcess
from tests.helpers.server import DEFAULT_PASSWORD, DEFAULT_USER, ServerProcess, create_user

from .measure import Run, run

__all__ = ["ChunksyncWorld", "SyncRun", "dir_bytes"]

PASSPHRASE = "bench passphrase, long enough"
REPO = Path(__file__).resolve().parents[2]


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "chunksync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "chunksync.cli"]


def dir_bytes(root: Path) -> int:
    """Bytes of every file under ``root`` (apparent size): what a server's disk holds."""
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


class SyncRun:
    """A measured ``chunksync sync --json``: the process figures and its JSON summary."""

    def __init__(self, proc: Run) -> None:
        self.proc = proc
        self.doc: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}

    @property
    def seconds(self) -> float:
        return self.proc.seconds

    @property
    def uploaded_bytes(self) -> int:
        return int(self.doc.get("uploaded_bytes", 0))

    @property
    def head(self) -> str:
        return str(self.doc.get("head") or "")

    @property
    def changed(self) -> bool:
        return bool(self.doc.get("pushed") or self.doc.get("applied") or self.doc.get("deleted"))


class ChunksyncWorld:
    """One loopback server and any number of devices, all under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "server"
        shutil.rmtree(base, ignore_errors=True)
        self.data.mkdir(parents=True)
        create_user(self.data, DEFAULT_USER)
        self.server = ServerProcess(self.data)
        self._logged_in: set[str] = set()

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.base_url

    def home(self, device: str) -> Path:
        return self.base / "homes" / device

    def folder(self, device: str) -> Path:
        return self.base / "folders" / device

    def env(self, device: str) -> dict[str, str]:
        return {
            "CHUNKSYNC_HOME": str(self.home(device)),
            "CHUNKSYNC_PASSWORD": DEFAULT_PASSWORD,
            "CHUNKSYNC_PASSPHRASE": PASSPHRASE,
            "PYTHONPATH": str(REPO),
        }

    def cli(self, device: str, *args: str) -> Run:
        if device not in self._logged_in:
            self._logged_in.add(device)
            self.cli(device, "login", self.url, "--user", DEFAULT_USER, "--device-name", device)
        return run([*_cli(), *args], env=self.env(device), cwd=REPO)

    def init(self, device: str, folder: str) -> Path:
        """A new folder on an empty directory (untimed set-up: new key, empty first sync)."""
        root = self.folder(device)
        root.mkdir(parents=True, exist_ok=True)
        self.cli(device, "init", str(root), "--folder", folder)
        return root

    def join(self, device: str, folder: str) -> Run:
        """``chunksync join``: the second device's whole download, KDF included."""
        return self.cli(device, "join", str(self.folder(device)), "--folder", folder)

    def sync(self, device: str, *extra: str) -> SyncRun:
        return SyncRun(self.cli(device, "sync", str(self.folder(device)), "--json", *extra))

    def restore(self, device: str, to: Path, snapshot: str) -> Run:
        """``chunksync restore --snapshot ID``: the whole tree into a new directory."""
        shutil.rmtree(to, ignore_errors=True)
        return self.cli(
            device, "restore", str(self.folder(device)), "--snapshot", snapshot, "--to", str(to)
        )

    def daemon(self, device: str, *args: str) -> DaemonProcess:
        """A ``chunksync daemon`` for ``device`` (context manager; defaults unless ``args``)."""
        proc = DaemonProcess(self, device, *args)  # type: ignore[arg-type]
        proc.args = args  # DaemonProcess's default are test timings; a user gets the CLI's
        return proc

    def server_stats(self) -> dict[str, Any]:
        """``server stats --json``: objects and bytes stored, per folder."""
        out = subprocess.run(
            [sys.executable, "-m", "chunksync_server", "stats", "--data", str(self.data), "--json"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            check=True,
            text=True,
        )
        return dict(json.loads(out.stdout))

    def server_bytes(self) -> int:
        """Everything the server's data directory holds (objects, metadata, logs)."""
        return dir_bytes(self.data)
