"""WebSocket hub: pushes head moves to the devices watching a folder.

A device opens ``GET /v1/folders/{folder}/events`` (WebSocket, bearer token as for any
other request). The server first sends ``{"type": "hello", "folder", "head", "seq"}``
— from then on the subscription is live — and afterwards one
``{"type": "head", "folder", "head", "seq"}`` right after every committed head move
of that folder (including the sender's own). Messages are advisory: a client that
misses one (reconnect, slow link) just reads the head.

Revocation: :meth:`EventHub.close_tokens` closes every socket opened with one of the
given token hashes (code 4001). The server calls it directly for logout/rotation and,
for revocations made by the admin CLI in another process, from a watcher that polls
SQLite's ``PRAGMA data_version`` (which changes whenever another connection commits)
and re-validates the tokens of the open sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["CLOSE_REVOKED", "EventHub", "Subscriber", "head_event"]

log = logging.getLogger(__name__)

CLOSE_REVOKED = 4001
SEND_TIMEOUT = 5.0


def head_event(kind: str, folder: str, head: str | None, seq: int) -> str:
    return json.dumps({"type": kind, "folder": folder, "head": head, "seq": seq})


@dataclass(eq=False, slots=True)
class Subscriber:
    folder: str
    device_id: str
    token_hash: bytes = field(repr=False)
    ws: web.WebSocketResponse


class EventHub:
    """Subscribers by folder name; every method runs on the event loop."""

    def __init__(self) -> None:
        self._by_folder: dict[str, set[Subscriber]] = {}
        #: the newest seq published per folder: a move reported twice (by this process
        #: and again by the cross-server fan-out, chunksync_server.fanout) is sent once
        self._last_seq: dict[str, int] = {}

    def subscribe(self, sub: Subscriber) -> None:
        self._by_folder.setdefault(sub.folder, set()).add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._by_folder.get(sub.folder)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_folder[sub.folder]

    def subscribers(self) -> list[Subscriber]:
        return [s for subs in self._by_folder.values() for s in subs]

    async def publish(self, folder: str, head: str | None, seq: int) -> None:
        if seq <= self._last_seq.get(folder, 0):
            return  # already sent (or an older move arriving late)
        self._last_seq[folder] = seq
        message = head_event("head", folder, head, seq)
        subs = list(self._by_folder.get(folder, ()))
        if subs:
            await asyncio.gather(*(self._send(s, message) for s in subs))

    async def _send(self, sub: Subscriber, message: str) -> None:
        try:
            await asyncio.wait_for(sub.ws.send_str(message), SEND_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):
            self.unsubscribe(sub)

    async def close_tokens(self, hashes: Iterable[bytes]) -> int:
        doomed = set(hashes)
        victims = [s for s in self.subscribers() if s.token_hash in doomed]
        for sub in victims:
            self.unsubscribe(sub)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await sub.ws.close(code=CLOSE_REVOKED, message=b"token revoked")
        return len(victims)

    async def close_all(self) -> None:
        for sub in self.subscribers():
            self.unsubscribe(sub)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await sub.ws.close(code=1001, message=b"server shutdown")

    async def watch_revocations(
        self,
        data_version: Callable[[], Awaitable[int]],
        invalid: Callable[[list[bytes]], Awaitable[set[bytes]]],
        interval: float,
    ) -> None:
        """Forever: when the database changed, close sockets whose token died."""
        seen = await data_version()
        while True:
            await asyncio.sleep(interval)
            try:
                version = await data_version()
                if version == seen or not self._by_folder:
                    seen = version
                    continue
                seen = version
                hashes = list({s.token_hash for s in self.subscribers()})
                dead = await invalid(hashes)
                if dead:
                    await self.close_tokens(dead)
            except Exception:  # keep watching; a failed poll is retried next tick
                log.exception("revocation watcher: poll failed")
