"""A faulty network and server between one device and the shared store.

:class:`FaultyLink` is the device's ChunkStore. For one sync it is armed with a plan:
at the n-th transport call of that sync, one fault fires —

* ``drop_request``: the request never arrives (NetworkError, nothing done);
* ``drop_answer``: the server acts, the answer is lost (NetworkError after the effect);
* ``duplicate``: the request is delivered twice (a retried request whose first answer
  was lost), the second answer is returned;
* ``stale_head``: a delayed answer overtakes a newer one: GET head returns the head
  this link saw on an earlier call (an honest but out-of-date server view);
* ``server_crash``: the server dies mid-request: a batch upload stores only a prefix
  of its objects, a head move happens or not, and the answer is lost. The memory store
  keeps only what it committed, as the disk store does;
* ``device_crash``: the device is killed at this call (see world.CrashableIndex);
* ``writer``: a slow writer changes a file of this device just before this call, so
  the file changes while the sync is in flight (after the scan read it, before apply);
  keyed ``"scan"``, it changes the file while the scanner reads it (:func:`scan_writer`).

A fault is keyed by the call's position in the sync or by a method name (its first
call). A partitioned link fails every call. Calls are counted per method for the
zero-traffic-at-steady-state invariant.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chunksync import scanner
from chunksync.errors import NetworkError
from chunksync.objects import ObjectId
from chunksync.transport.base import ChunkStore
from chunksync.wire import HeadLogEntry, HeadState

FAULT_KINDS = (
    "drop_request",
    "drop_answer",
    "duplicate",
    "stale_head",
    "server_crash",
    "device_crash",
    "writer",
)


@contextmanager
def scan_writer(root: Path, act: Callable[[Path], None]) -> Iterator[None]:
    """A slow writer racing the scanner: the first file below ``root`` that the scanner
    opens to read, ``act(path)`` changes before its first byte is read, so the stat the
    walk took no longer holds when the read ends (the scanner must read it again, never
    record a mix). Hooks the scanner's reader while the sync runs."""
    reader = scanner._Reader
    original = reader._chunks
    fired = threading.Lock()
    prefix = os.fspath(root) + os.sep

    def chunks(self: Any, fd: int, size: int) -> Any:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith(prefix) and fired.acquire(blocking=False):
            act(Path(path))
        return original(self, fd, size)

    reader._chunks = chunks  # type: ignore[method-assign]
    try:
        yield
    finally:
        reader._chunks = original  # type: ignore[method-assign]


class DeviceCrash(BaseException):
    """The device was killed here. A BaseException, so no ``except Exception`` in the
    engine can swallow it, as none can swallow a SIGKILL."""


class FaultyLink:
    """The device's view of the server, with the faults of the current sync."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store
        self.inner: ChunkStore = store  # a hostile view replaces it for one sync
        self.faults: dict[int | str, str] = {}
        self.calls = 0
        self.total: Counter[str] = Counter()
        self.partitioned = False
        self.crashed = False
        self.on_crash: Callable[[], None] = lambda: None
        self.on_writer: Callable[[], None] = lambda: None
        self.last_head: HeadState | None = None
        self.heads_shown: list[str | None] = []  # heads this sync was shown, in order
        self.fired: list[str] = []

    def arm(
        self, faults: dict[int | str, str] | None = None, inner: ChunkStore | None = None
    ) -> None:
        self.faults = dict(faults or {})
        self.inner = inner or self.store
        self.calls = 0
        self.crashed = False
        self.fired = []
        self.heads_shown = []

    def disarm(self) -> None:
        self.faults = {}
        self.inner = self.store
        self.crashed = False

    async def _call(self, method: str, *args: Any) -> Any:
        n = self.calls
        self.calls += 1
        self.total[method] += 1
        if self.crashed:
            raise DeviceCrash(f"{method} after the crash")
        if self.partitioned:
            raise NetworkError("simulated partition: server unreachable")
        kind = self.faults.pop(n, None) or self.faults.pop(method, None)
        act = getattr(self.inner, method)
        if kind is None:
            return await self._observe(method, await act(*args))
        self.fired.append(f"{kind}@{n}:{method}")
        if kind == "drop_request":
            raise NetworkError("simulated fault: request lost")
        if kind == "device_crash":
            self.crashed = True
            self.on_crash()
            raise DeviceCrash(f"device killed at {method}")
        if kind == "writer":
            self.on_writer()
            return await self._observe(method, await act(*args))
        if kind == "stale_head" and method == "get_head" and self.last_head is not None:
            self.heads_shown.append(self.last_head.head)
            return self.last_head
        if kind == "server_crash":
            if method == "put_many" and len(args[0]) > 1:
                await act(list(args[0])[: len(args[0]) // 2])
            elif n % 2 == 0:
                await act(*args)
            raise NetworkError("simulated server crash: connection reset")
        result = await act(*args)
        if kind == "drop_answer":
            raise NetworkError("simulated fault: answer lost")
        if kind == "duplicate":
            result = await act(*args)
        return await self._observe(method, result)

    async def _observe(self, method: str, result: Any) -> Any:
        if method == "get_head":
            self.last_head = result
            self.heads_shown.append(result.head)
        return result

    # --- the ChunkStore protocol --------------------------------------------------------
    async def missing(self, ids: Sequence[ObjectId]) -> set[ObjectId]:
        return await self._call("missing", ids)

    async def put_many(self, items: Sequence[tuple[ObjectId, bytes]]) -> None:
        await self._call("put_many", items)

    async def get_many(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        return await self._call("get_many", ids)

    async def get_head(self) -> HeadState:
        return await self._call("get_head")

    async def cas_head(self, expected: str | None, new: str) -> HeadState:
        return await self._call("cas_head", expected, new)

    async def head_log(self, after: int = 0, limit: int = 1000) -> list[HeadLogEntry]:
        return await self._call("head_log", after, limit)

    async def get_keyslots(self) -> dict[str, bytes]:
        return await self._call("get_keyslots")

    async def role(self) -> str:
        return await self._call("role")

    async def put_keyslot(self, name: str, blob: bytes) -> None:
        await self._call("put_keyslot", name, blob)

    def watch(self) -> AsyncIterator[HeadState]:
        return self.inner.watch()

    async def aclose(self) -> None:
        return None
