"""Run ``chunksync daemon DIR`` as a real subprocess for a device of a :class:`CliWorld`.

:class:`DaemonProcess` starts the daemon with short timings, talks to it over its control
socket (the same client code as ``chunksync status``), reads its structured stderr log,
and can SIGTERM or SIGKILL it. :func:`wait_until` polls a condition with a deadline:
the filesystem and another process give no event to await.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from chunksync.config import FolderPaths
from chunksync.status import ask_daemon
from tests.helpers.cli_setup import CliWorld

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

FAST = (
    "--quiet-ms",
    "100",
    "--max-delay-ms",
    "1000",
    "--poll-interval",
    "2",
    "--backoff-max",
    "1",
    "--settle-ms",
    "400",
)


def wait_until(
    check: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None


class DaemonProcess:
    def __init__(self, world: CliWorld, device: str, *args: str) -> None:
        self.world, self.device = world, device
        self.root = world.folder(device)
        self.args = args or FAST
        self.log_path = world.base / f"daemon-{device}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "CHUNKSYNC_HOME": str(self.world.home(self.device)),
        }

    def start(self) -> DaemonProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chunksync.cli", "daemon", str(self.root), *self.args],
                cwd=REPO,
                env=self.env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        return self

    def ask(self, command: str) -> dict[str, Any] | None:
        return ask_daemon(FolderPaths(self.root.resolve()), command)

    def status(self) -> dict[str, Any]:
        reply = self.ask("status")
        assert reply is not None, f"daemon {self.device} does not answer: {self.log_tail()}"
        return reply

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon {self.device} exited {self.proc.returncode}: {self.log_tail()}"
                )
            reply = self.ask("status")
            return reply if reply and reply.get("last_sync") else None

        return wait_until(ready, timeout, what=f"daemon {self.device} to finish its first sync")

    def wait_at_head(self, timeout: float = 20.0) -> dict[str, Any]:
        return wait_until(
            lambda: (s := self.status()) and s["at_head"] and s["state"] == "idle" and s,
            timeout,
            what=f"daemon {self.device} at head",
        )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                doc = json.loads(line)
                if kind is None or doc.get("event") == kind:
                    out.append(doc)
        return out

    def log_tail(self, n: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        return rc

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
