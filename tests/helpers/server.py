"""Start a real chunk server on 127.0.0.1 for tests, with a user ready to log in.

Two ways, same result (:class:`RunningServer`: base URL, data dir, credentials):

* in-process — ``async with serve_in_process(tmp_path) as srv:`` or the async pytest
  fixture :func:`chunk_server` (import it into your test module or conftest). Runs
  ``make_app`` under ``aiohttp.test_utils.TestServer`` on port 0, with the real SQLite
  metadata and the real object store in the tmp data dir.
* subprocess — ``with ServerProcess(data_dir) as proc:`` runs ``python -m chunksync_server serve
  --port 0 --port-file F`` and waits for its "listening on" line; ``proc.kill()`` is a
  SIGKILL, ``proc.restart()`` starts it again on the same data dir.

Users are created directly in the data dir with a cheap Argon2id cost (the hash records
its parameters, so any server verifies them). :func:`login` returns a device token.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestServer

from chunksync import wire
from chunksync_server import admin
from chunksync_server.app import make_app
from chunksync_server.config import Argon2Params, ServerConfig

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "RunningServer",
    "ServerProcess",
    "chunk_server",
    "create_user",
    "fast_config",
    "login",
    "serve_in_process",
]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_USER = "alice"
DEFAULT_PASSWORD = "correct horse battery"


def fast_config(data_dir: Path, **changes: Any) -> ServerConfig:
    """Production settings, except a cheap KDF and a fast revocation poll."""
    base = ServerConfig(data_dir=data_dir, port=0, argon2=Argon2Params.fast(), revocation_poll=0.05)
    return base.with_changes(**changes) if changes else base


def create_user(
    data_dir: Path, name: str, password: str = DEFAULT_PASSWORD, *, admin_user: bool = False
) -> None:
    admin.add_user(data_dir, name, password, admin=admin_user, params=Argon2Params.fast())


async def login(
    session: aiohttp.ClientSession,
    base_url: str,
    user: str,
    password: str = DEFAULT_PASSWORD,
    device_name: str = "test-device",
    totp: str | None = None,
) -> dict[str, Any]:
    """POST /v1/login; returns {"token","device_id","expires_at"} or raises on non-200."""
    body: dict[str, Any] = {"user": user, "password": password, "device_name": device_name}
    if totp is not None:
        body["totp"] = totp
    async with session.post(base_url + wire.LOGIN, json=body) as resp:
        doc = await resp.json()
        if resp.status != 200:
            raise AssertionError(f"login failed: {resp.status} {doc}")
        return dict(doc)


@dataclass
class RunningServer:
    base_url: str
    data_dir: Path
    user: str
    password: str
    token: str = field(repr=False)
    device_id: str
    app: Any = None  # the aiohttp Application when in-process

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def url(self, route: str, **params: str) -> str:
        return self.base_url + route.format(**params)


@asynccontextmanager
async def serve_in_process(
    data_dir: Path,
    *,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    store: Any | None = None,
    **config_changes: Any,
) -> AsyncIterator[RunningServer]:
    """A running in-process server with ``user`` created and logged in once."""
    create_user(data_dir, user, password)
    app = make_app(fast_config(data_dir, **config_changes), store=store)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            creds = await login(session, base, user, password)
        yield RunningServer(base, data_dir, user, password, creds["token"], creds["device_id"], app)
    finally:
        await server.close()


@pytest_asyncio.fixture
async def chunk_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """Async fixture: a real in-process server in ``tmp_path/server``."""
    async with serve_in_process(tmp_path / "server") as srv:
        yield srv


class ServerProcess:
    """``python -m chunksync_server serve --port 0`` as a child process (see module docstring)."""

    def __init__(self, data_dir: Path, *extra_args: str, startup_timeout: float = 20.0) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.timeout = startup_timeout
        self.port_file = data_dir.parent / f"{data_dir.name}.port"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chunksync_server",
                "serve",
                "--data",
                str(self.data_dir),
                "--port",
                "0",
                "--port-file",
                str(self.port_file),
                *self.extra_args,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        line = self._read_line()
        if not line.startswith(b"listening on"):
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            self.kill()
            raise RuntimeError(f"server did not start: {line!r} {err[-500:]}")
        self.port = int(self.port_file.read_text())
        return self

    def _read_line(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(self.timeout):
                return b"<timeout>"
        return self.proc.stdout.readline()

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run (crash simulation)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self._close_pipes()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._close_pipes()
            self.proc = None

    def _close_pipes(self) -> None:
        assert self.proc is not None
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
