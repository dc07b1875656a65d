"""Controlling a running daemon: the status it reports, the transfer gate, the socket.

* :class:`FolderStatus` is what ``chunksync status`` shows for a folder a daemon runs:
  state (idle | scanning | syncing | offline | paused | error), pending changes, last
  sync time, last error, conflicts, bytes up/down, head, whether it is at the server's
  head, and the clock skew against the server. No secrets live in it.
* :class:`GatedChunkStore` wraps the folder's ChunkStore for the engine. ``close()``
  (pause, shutdown) makes every in-flight call end at once with :class:`TransfersPaused`
  and every new call fail the same way, so "pause" stops network transfers within
  milliseconds, whichever thread the engine made the call from. The engine's writes are
  atomic (temp file, fsync, rename), so stopping mid-round leaves no partial file.
* :class:`ControlServer` serves ``DIR/.chunksync/control.sock`` (mode 0600, in a 0700
  directory): one JSON line per request, ``{"command": "status" | "pause" | "resume" |
  "sync-now"}``, one JSON line back. The client side is :func:`chunksync.status.ask_daemon`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .errors import NetworkError
from .objects import ObjectId
from .transport.base import ChunkStore, HeadLogEntry, HeadState
from .transport.ratelimit import BandwidthLimits

__all__ = ["COMMANDS", "ControlServer", "FolderStatus", "GatedChunkStore", "TransfersPaused"]

log = logging.getLogger(__name__)
T = TypeVar("T")

COMMANDS = ("status", "pause", "resume", "sync-now")
MAX_REQUEST = 4096


class TransfersPaused(NetworkError):
    """Transfers are stopped (paused or shutting down); not retried by the transport."""

    retryable = False


@dataclass
class FolderStatus:
    """The daemon's live view of one folder (mutated only on the event loop)."""

    folder: str
    device: str
    state: str = "idle"
    pending_changes: int = 0
    last_sync_ns: int | None = None
    last_error: str | None = None
    conflicts: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    head: str | None = None
    server_head: str | None = None
    clock_skew: float | None = None
    paused: bool = False
    limits: BandwidthLimits = BandwidthLimits()  # the effective bandwidth limits
    low_priority: bool = False

    @property
    def at_head(self) -> bool:
        return self.head is not None and self.head == self.server_head and self.pending_changes == 0

    def to_json(self) -> dict[str, Any]:
        last = self.last_sync_ns
        return {
            "folder": self.folder,
            "device": self.device,
            "state": "paused" if self.paused else self.state,
            "pending_changes": self.pending_changes,
            "last_sync": None
            if last is None
            else datetime.fromtimestamp(last / 1e9, UTC).isoformat(),
            "last_error": self.last_error,
            "conflicts": self.conflicts,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "head": self.head,
            "server_head": self.server_head,
            "at_head": self.at_head,
            "clock_skew": None if self.clock_skew is None else round(self.clock_skew, 3),
            "daemon_pid": os.getpid(),
            "limit_upload_kib": self.limits.upload_kib,
            "limit_download_kib": self.limits.download_kib,
            "priority": "low" if self.low_priority else "normal",
        }


class GatedChunkStore:
    """A ChunkStore whose transfers can be stopped at once (see the module docstring)."""

    def __init__(self, inner: ChunkStore) -> None:
        self.inner = inner
        self._open = True
        self._calls: set[asyncio.Task[Any]] = set()

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        """Stop transfers: in-flight calls end with TransfersPaused, new ones fail."""
        self._open = False
        for task in list(self._calls):
            task.cancel()

    async def _run(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        if not self._open:
            raise TransfersPaused(f"{what}: transfers are paused")
        task: asyncio.Task[T] = asyncio.ensure_future(make())
        self._calls.add(task)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and not self._open:
                raise TransfersPaused(f"{what}: transfers are paused") from None
            task.cancel()
            raise
        finally:
            self._calls.discard(task)

    async def missing(self, ids: Sequence[ObjectId]) -> set[ObjectId]:
        return await self._run("missing", lambda: self.inner.missing(ids))

    async def put_many(self, items: Sequence[tuple[ObjectId, bytes]]) -> None:
        await self._run("upload", lambda: self.inner.put_many(items))

    async def get_many(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        return await self._run("download", lambda: self.inner.get_many(ids))

    async def get_head(self) -> HeadState:
        return await self._run("get head", self.inner.get_head)

    async def cas_head(self, expected: str | None, new: str) -> HeadState:
        return await self._run("set head", lambda: self.inner.cas_head(expected, new))

    async def head_log(self, after: int = 0, limit: int = 1000) -> list[HeadLogEntry]:
        return await self._run("head log", lambda: self.inner.head_log(after, limit))

    async def get_keyslots(self) -> dict[str, bytes]:
        return await self._run("key slots", self.inner.get_keyslots)

    async def role(self) -> str:
        return await self._run("folder role", self.inner.role)

    async def put_keyslot(self, name: str, blob: bytes) -> None:
        await self._run("put key slot", lambda: self.inner.put_keyslot(name, blob))

    def watch(self) -> AsyncIterator[HeadState]:
        return self.inner.watch()

    async def aclose(self) -> None:
        self.close()


Handler = Callable[[str], Awaitable[dict[str, Any]]]


def parse_request(line: bytes) -> str:
    """The command of one request line; ValueError with a one-line reason otherwise."""
    try:
        doc = json.loads(line)
    except ValueError:
        raise ValueError("request is not JSON") from None
    command = doc.get("command") if isinstance(doc, dict) else None
    if command not in COMMANDS:
        raise ValueError(
            f"unknown command {str(command)[:40]!r}; expected one of {', '.join(COMMANDS)}"
        )
    return str(command)


class ControlServer:
    """The folder's control socket; ``handler(command)`` returns the reply document."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale: we hold the folder's daemon lock
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            if len(line) > MAX_REQUEST:
                reply: dict[str, Any] = {"error": "request too long"}
            else:
                try:
                    reply = await self.handler(parse_request(line))
                except ValueError as exc:
                    reply = {"error": str(exc)}
            writer.write(json.dumps(reply, sort_keys=True, default=str).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
