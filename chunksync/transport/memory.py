"""``MemoryChunkStore``: a complete in-process ChunkStore, first-class, not a mock.

It keeps blobs in a dict, the head under compare-and-swap with an append-only head
log, key slots, and wakes watchers through an :class:`asyncio.Condition`. It enforces
the same wire limits as the HTTP transport (blob and id sizes) and passes the same
contract suite, so engine and simulator tests that run against it mean something
against a real server too.

Every call yields to the event loop once before acting, so concurrent callers really
interleave (a CAS race among ten tasks has one winner, as on a server).

Fault hooks for engine tests: :meth:`MemoryChunkStore.fail_next` makes the next *n*
calls (optionally only of some methods) raise a chosen error, by default a retryable
:class:`~chunksync.errors.NetworkError`; ``calls`` counts calls per method.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Sequence

from .. import wire
from ..errors import (
    AuthError,
    ChunksyncError,
    NetworkError,
    ObjectNotFound,
    ProtocolError,
    RefConflict,
)
from ..objects import ObjectId
from .base import HeadLogEntry, HeadState, check_blob, check_id, plan_batches, unique

__all__ = ["MemoryChunkStore"]


class MemoryChunkStore:
    """One folder held in memory. ``device``/``user`` label the head log entries."""

    def __init__(
        self,
        *,
        device: str = "memory",
        user: str = "memory",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._blobs: dict[ObjectId, bytes] = {}
        self._head = HeadState(None, 0)
        self._log: list[HeadLogEntry] = []
        self._slots: dict[str, bytes] = {}
        self._changed = asyncio.Condition()
        self._closed = False
        self._device, self._user, self._clock = device, user, clock
        self._faults: list[tuple[Callable[[], ChunksyncError], frozenset[str] | None]] = []
        self.calls: Counter[str] = Counter()
        #: the storage epoch GET head reports; a test that loses objects changes it, as
        #: a real server does when it restarts or repairs storage (chunksync_server/epoch.py)
        self.epoch = "memory"
        #: this account's role; a read-only one is refused every write, as by the server
        self.role_name = "owner"

    def __repr__(self) -> str:
        return f"MemoryChunkStore(objects={len(self._blobs)}, seq={self._head.seq})"

    # --- fault hooks ----------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        error: Callable[[], ChunksyncError] | None = None,
        *,
        methods: Collection[str] | None = None,
    ) -> None:
        """Make the next ``n`` matching calls raise ``error()`` (default NetworkError)."""
        make = error or (lambda: NetworkError("injected network failure"))
        only = frozenset(methods) if methods is not None else None
        self._faults.extend([(make, only)] * n)

    @property
    def object_count(self) -> int:
        return len(self._blobs)

    async def _enter(self, method: str) -> None:
        await asyncio.sleep(0)
        if self._closed:
            raise NetworkError("chunk store is closed")
        self.calls[method] += 1
        for i, (make, only) in enumerate(self._faults):
            if only is None or method in only:
                del self._faults[i]
                raise make()

    # --- objects --------------------------------------------------------------------
    async def missing(self, ids: Sequence[ObjectId]) -> set[ObjectId]:
        await self._enter("missing")
        return {oid for oid in unique(ids) if oid not in self._blobs}

    async def put_many(self, items: Sequence[tuple[ObjectId, bytes]]) -> None:
        await self._enter("put_many")
        self._check_writable()
        for batch in plan_batches(items):
            for oid, blob in batch:
                self._blobs.setdefault(oid, blob)

    async def get_many(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        await self._enter("get_many")
        wanted = unique(ids)
        for oid in wanted:
            if oid not in self._blobs:
                raise ObjectNotFound(f"object {oid.hex()} not found")
        return {oid: self._blobs[oid] for oid in wanted}

    # --- head -----------------------------------------------------------------------
    async def get_head(self) -> HeadState:
        await self._enter("get_head")
        return HeadState(self._head.head, self._head.seq, self.epoch)

    async def cas_head(self, expected: str | None, new: str) -> HeadState:
        await self._enter("cas_head")
        self._check_writable()
        if not wire.HEX_ID.match(new) or (expected is not None and not wire.HEX_ID.match(expected)):
            raise ProtocolError("head: malformed id")
        if bytes.fromhex(new) not in self._blobs:
            raise ProtocolError(f"head {new[:12]}: object not stored")
        current = self._head
        if current.head == new:  # a repeat whose answer was lost: already done
            return current
        if current.head != expected:
            raise RefConflict(
                f"head moved: expected {(expected or 'none')[:12]}, "
                f"server has {(current.head or 'none')[:12]}",
                current=current.head,
                seq=current.seq,
            )
        self._head = HeadState(new, current.seq + 1)
        self._log.append(
            HeadLogEntry(self._head.seq, new, current.head, self._clock(), self._device, self._user)
        )
        async with self._changed:
            self._changed.notify_all()
        return self._head

    async def head_log(self, after: int = 0, limit: int = 1000) -> list[HeadLogEntry]:
        await self._enter("head_log")
        if after < 0 or limit < 1:
            raise ProtocolError("head log: after must be >= 0 and limit >= 1")
        return self._log[after : after + limit]

    # --- membership -----------------------------------------------------------------
    async def role(self) -> str:
        await self._enter("role")
        return self.role_name

    def _moved_past(self, seq: int) -> bool:
        return self._closed or self._head.seq > seq

    def _check_writable(self) -> None:
        if self.role_name not in ("owner", "read-write"):
            raise AuthError(f"role {self.role_name} cannot write to this folder (HTTP 403)")

    # --- key slots ------------------------------------------------------------------
    async def get_keyslots(self) -> dict[str, bytes]:
        await self._enter("get_keyslots")
        return dict(self._slots)

    async def put_keyslot(self, name: str, blob: bytes) -> None:
        await self._enter("put_keyslot")
        self._check_writable()
        if not wire.SLOT_NAME.match(name):
            raise ProtocolError(f"key slot name {name!r:.70} is invalid")
        if len(blob) > wire.MAX_KEYSLOT_BYTES:
            raise ProtocolError("key slot blob is too large")
        if name not in self._slots and len(self._slots) >= wire.MAX_SLOTS:
            raise ProtocolError(f"a folder holds at most {wire.MAX_SLOTS} key slots")
        self._slots[name] = bytes(blob)

    # --- watch and lifecycle ------------------------------------------------------------
    async def watch(self) -> AsyncIterator[HeadState]:
        """Yield the current head, then each newer one, until the store is closed."""
        last = -1
        while not self._closed:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._moved_past, last))
            if self._closed:
                return
            state = self._head
            last = state.seq
            yield state

    async def aclose(self) -> None:
        self._closed = True
        async with self._changed:
            self._changed.notify_all()

    # --- direct access for tests (no faults, no yielding) ---------------------------------
    def peek(self, oid: ObjectId) -> bytes | None:
        """The stored blob, bypassing fault hooks: for assertions in tests."""
        return self._blobs.get(check_id(oid))

    def poke(self, oid: ObjectId, blob: bytes) -> None:
        """Overwrite a stored blob (simulates a tampering server) — tests only."""
        self._blobs[check_id(oid)] = check_blob(oid, blob)
