"""Drive the real ``chunksync`` CLI (click's CliRunner, in-process) against a real
server subprocess, as several devices each with its own ``CHUNKSYNC_HOME``.

The KDF is made cheap for tests (``keyslots.TEST_PARAMS``), as restic does with
``TestUseLowSecurityKDFParameters``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chunksync.cli import main
from chunksync.crypto import keyslots
from tests.helpers.server import DEFAULT_PASSWORD, DEFAULT_USER, ServerProcess, create_user

PASSPHRASE = "a long folder passphrase"


@dataclass
class CliWorld:
    server: ServerProcess
    base: Path
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def url(self) -> str:
        return self.server.base_url

    def home(self, device: str) -> Path:
        return self.base / "homes" / device

    def folder(self, device: str) -> Path:
        return self.base / "folders" / device

    def run(
        self,
        device: str,
        *args: str,
        ok: bool = True,
        passphrase: str = PASSPHRASE,
        new_passphrase: str | None = None,
    ) -> Result:
        env = {
            "CHUNKSYNC_HOME": str(self.home(device)),
            "CHUNKSYNC_PASSWORD": DEFAULT_PASSWORD,
            "CHUNKSYNC_PASSPHRASE": passphrase,
        }
        if new_passphrase is not None:
            env["CHUNKSYNC_NEW_PASSPHRASE"] = new_passphrase
        result = self.runner.invoke(main, list(args), env=env, catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"chunksync {' '.join(args)} failed ({result.exit_code}): {result.output}"
            )
        return result

    def login(self, device: str) -> None:
        self.run(device, "login", self.url, "--user", DEFAULT_USER, "--device-name", device)

    def init(self, device: str, folder: str = "docs") -> Path:
        self.login(device)
        self.run(device, "init", str(self.folder(device)), "--folder", folder)
        return self.folder(device)

    def join(self, device: str, folder: str = "docs") -> Path:
        self.login(device)
        self.run(device, "join", str(self.folder(device)), "--folder", folder)
        return self.folder(device)

    def sync(self, device: str, *extra: str) -> Result:
        return self.run(device, "sync", str(self.folder(device)), *extra)


@pytest.fixture
def cli_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliWorld]:
    monkeypatch.setattr(keyslots, "DEFAULT_PARAMS", keyslots.TEST_PARAMS)
    monkeypatch.setattr(keyslots, "MIN_PARAMS", keyslots.TEST_PARAMS)
    data = tmp_path / "server"
    data.mkdir()
    create_user(data, DEFAULT_USER)
    with ServerProcess(data) as proc:
        yield CliWorld(proc, tmp_path)
