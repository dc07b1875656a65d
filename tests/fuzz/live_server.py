"""A real chunk server on 127.0.0.1, run on its own event loop in a background thread.

Why a thread: schemathesis drives the API with blocking ``requests`` calls from a plain
(synchronous) test, so the server cannot share the test's event loop. The server is the
same one every integration test uses (:func:`tests.helpers.server.serve_in_process`:
``make_app``, real SQLite, real pack store), with the login limits raised so that
thousands of fuzzed logins never lock the fuzzer's own account out, and a
:meth:`LiveServer.fresh_token` for routes that revoke or change the calling account.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from tests.helpers.server import (
    DEFAULT_PASSWORD,
    RunningServer,
    create_user,
    login,
    serve_in_process,
)

__all__ = ["LiveServer", "live_server"]

START_TIMEOUT = 30.0


class LiveServer:
    """The running server plus a way to mint throwaway users and tokens."""

    def __init__(self, srv: RunningServer, loop: asyncio.AbstractEventLoop) -> None:
        self.srv = srv
        self.loop = loop
        self._names = itertools.count()

    @property
    def base_url(self) -> str:
        return self.srv.base_url

    @property
    def token(self) -> str:
        return self.srv.token

    def run(self, coro: object, timeout: float = 30.0) -> object:
        """Run a coroutine on the server's loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def fresh_token(self) -> str:
        """A new user's token: for logout, rotate and TOTP, which change their caller."""
        name = f"throwaway{next(self._names)}"
        create_user(self.srv.data_dir, name)

        async def go() -> str:
            async with aiohttp.ClientSession() as session:
                creds = await login(session, self.srv.base_url, name, DEFAULT_PASSWORD)
            return str(creds["token"])

        return str(self.run(go()))


@contextmanager
def live_server(data_dir: Path) -> Iterator[LiveServer]:
    """Start the server thread, yield once it listens, stop it and join on exit."""
    ready: dict[str, object] = {}
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with serve_in_process(
                data_dir, login_max_failures=10**9, login_user_max_failures=10**9
            ) as srv:
                ready["srv"] = srv
                started.set()
                await stop.wait()
        except BaseException as exc:  # reported to the test thread below
            ready["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(START_TIMEOUT):
        raise RuntimeError("fuzz server did not start")
    if "error" in ready:
        raise RuntimeError(f"fuzz server failed to start: {ready['error']!r}")
    try:
        yield LiveServer(ready["srv"], loop)  # type: ignore[arg-type]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT)
        loop.close()
