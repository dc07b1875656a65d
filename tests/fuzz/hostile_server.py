"""A loopback HTTP server that answers every request with whatever the test sets.

For fuzzing the client's parsing of answers: each request gets :attr:`Answer.status`,
:attr:`Answer.body` and :attr:`Answer.content_type`, whatever the route. It runs on its
own event loop in a background thread, so a synchronous hypothesis test can drive a
fresh client per example with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

__all__ = ["Answer", "hostile_server"]


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"


@contextmanager
def hostile_server() -> Iterator[tuple[str, Answer]]:
    """Yield (base URL, the answer to give); stops the server on exit."""
    answer = Answer()
    loop = asyncio.new_event_loop()

    async def reply(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            status=answer.status, body=answer.body, headers={"Content-Type": answer.content_type}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", reply)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield f"http://127.0.0.1:{port}", answer
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
