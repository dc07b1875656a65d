"""The ``ChunkStore`` protocol: one folder on one server, as the sync engine sees it.

The sync engine depends on this protocol only, never on a concrete transport (restic's
archiver depends on its ``Backend`` interface the same way). Two implementations ship:
:class:`~chunksync.transport.memory.MemoryChunkStore` (in-process, for engine tests and
the simulator) and :class:`~chunksync.transport.http.HttpChunkStore` (the real client).
Both pass the same contract suite, ``tests/contract/test_chunk_store.py``.

Guarantees every implementation gives:

* objects are opaque sealed blobs keyed by 32-byte ids; ``put_many`` is idempotent
  (content-addressed), and an object once stored is never changed or removed;
* ``get_many`` returns exactly the ids asked for or raises
  :class:`~chunksync.errors.ObjectNotFound` naming a missing id — never a partial dict;
* the head moves only by compare-and-swap: ``cas_head`` either moves it from
  ``expected`` to ``new`` (appending one head log entry) or raises
  :class:`~chunksync.errors.RefConflict` carrying the current head and sequence number;
* ``watch()`` first yields the head current at (re)subscription, then each later head
  with a higher sequence number. Changes may be coalesced — a watcher sees the latest
  head, not necessarily every intermediate one (the head log has them all);
* errors are only ever :mod:`chunksync.errors` classes; ``retryable`` says whether the
  same call may succeed later.

The helpers here are shared so that every implementation enforces the same wire limits
(:func:`plan_batches`: a test against the memory store thus catches an engine that would
exceed them against a real server) and every networked one validates server answers
the same way (:func:`read_frames`, :func:`status_error`, :func:`check_log`): the server
is untrusted, so nothing it sends is used before it is checked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from .. import wire
from ..errors import (
    AuthError,
    ChunksyncError,
    ConfigError,
    ProtocolError,
    QuotaExceeded,
    RefConflict,
    ServerStorageFull,
    TransportError,
)
from ..objects import ObjectId
from ..wire import HeadLogEntry, HeadState

__all__ = [
    "ByteReader",
    "ChunkStore",
    "HeadLogEntry",
    "HeadState",
    "ServerError",
    "check_blob",
    "check_folder",
    "check_id",
    "check_log",
    "clean_reason",
    "field_of",
    "parse_event",
    "parse_json",
    "parse_keyslots",
    "plan_batches",
    "read_frames",
    "run_bounded",
    "split",
    "status_error",
    "unique",
]

T = TypeVar("T")

FRAME_OVERHEAD = wire.UPLOAD_FRAME_HEADER.size


class ServerError(TransportError):
    """The server failed or is overloaded (5xx, 429): the same call may succeed later."""

    retryable = True


@runtime_checkable
class ChunkStore(Protocol):
    """One folder on one server. All methods are coroutines except ``watch``."""

    async def missing(self, ids: Sequence[ObjectId]) -> set[ObjectId]:
        """Which of ``ids`` the store does not hold (any number of ids)."""
        ...

    async def put_many(self, items: Sequence[tuple[ObjectId, bytes]]) -> None:
        """Store sealed blobs; storing an id twice is harmless."""
        ...

    async def get_many(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        """Fetch blobs by id; raises ObjectNotFound naming the first missing id."""
        ...

    async def get_head(self) -> HeadState: ...

    async def cas_head(self, expected: str | None, new: str) -> HeadState:
        """Move the head from ``expected`` to ``new`` or raise RefConflict.

        Never retried by the transport. If the head already is ``new`` (a repeat of a
        call whose answer was lost), this succeeds and returns the current state.
        """
        ...

    async def head_log(self, after: int = 0, limit: int = 1000) -> list[HeadLogEntry]:
        """Head moves with ``seq > after``, oldest first, at most ``limit`` of them."""
        ...

    async def get_keyslots(self) -> dict[str, bytes]: ...

    async def role(self) -> str:
        """This account's role in the folder: one of ``wire.ROLES``."""
        ...

    async def put_keyslot(self, name: str, blob: bytes) -> None: ...

    def watch(self) -> AsyncIterator[HeadState]:
        """Current head, then every later head (possibly coalesced) until closed."""
        ...

    async def aclose(self) -> None: ...


def check_id(oid: object) -> ObjectId:
    """Refuse anything but a 32-byte id before it reaches the wire or a dict."""
    if not isinstance(oid, bytes) or len(oid) != 32:
        raise ProtocolError(f"object id must be 32 bytes, got {type(oid).__name__}")
    return ObjectId(oid)


def check_blob(oid: ObjectId, blob: object) -> bytes:
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ProtocolError(f"object {oid.hex()[:12]}: blob must be bytes")
    if len(blob) > wire.MAX_BLOB_SIZE:
        raise ProtocolError(
            f"object {oid.hex()[:12]}: {len(blob)} bytes exceeds the {wire.MAX_BLOB_SIZE} limit"
        )
    return bytes(blob) if not isinstance(blob, bytes) else blob


def unique(ids: Iterable[ObjectId]) -> list[ObjectId]:
    """Validated ids in first-seen order, duplicates dropped."""
    seen: dict[ObjectId, None] = {}
    for oid in ids:
        seen.setdefault(check_id(oid), None)
    return list(seen)


def split(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def plan_batches(
    items: Iterable[tuple[ObjectId, bytes]],
    max_bytes: int = wire.MAX_BATCH_BYTES,
    max_objects: int = wire.MAX_BATCH_OBJECTS,
) -> Iterator[list[tuple[ObjectId, bytes]]]:
    """Group uploads into batches whose framed size and count fit one request.

    Lazy, so only the batches in flight are materialised (as lists of references: the
    blobs are never copied). Duplicate ids are dropped; oversized blobs are refused.
    """
    seen: set[ObjectId] = set()
    batch: list[tuple[ObjectId, bytes]] = []
    size = 0
    for oid, blob in items:
        oid = check_id(oid)
        blob = check_blob(oid, blob)
        if oid in seen:
            continue
        seen.add(oid)
        framed = FRAME_OVERHEAD + len(blob)
        if batch and (size + framed > max_bytes or len(batch) >= max_objects):
            yield batch
            batch, size = [], 0
        batch.append((oid, blob))
        size += framed
    if batch:
        yield batch


async def run_bounded(jobs: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run job factories with at most ``limit`` in flight; the first error cancels the rest.

    Jobs are pulled lazily from ``jobs``, so a generator of batches is materialised only
    ``limit`` batches at a time. Results come back in completion order.
    """
    pending = iter(jobs)
    results: list[T] = []

    async def worker() -> None:
        for job in pending:
            results.append(await job())

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, limit))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return results


# --- validation of server answers (shared by every networked transport) ----------------


class ByteReader(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


async def read_frames(reader: ByteReader, asked: dict[str, ObjectId]) -> dict[ObjectId, bytes]:
    """Parse download frames from a stream: only asked ids, each once, all of them."""
    wanted = set(asked.values())
    out: dict[ObjectId, bytes] = {}
    header = wire.DOWNLOAD_FRAME_HEADER
    while True:
        try:
            head = await reader.readexactly(header.size)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ProtocolError("fetch: truncated frame header") from exc
            break
        oid, length = header.unpack(head)
        if oid not in wanted or oid in out:
            raise ProtocolError(f"fetch: server sent object {oid.hex()[:12]} that was not asked")
        if length > wire.MAX_BLOB_SIZE:
            raise ProtocolError(f"fetch: object {oid.hex()[:12]} exceeds the size limit")
        try:
            out[ObjectId(oid)] = await reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            raise ProtocolError(f"fetch: truncated frame for {oid.hex()[:12]}") from exc
    if len(out) != len(wanted):
        first = next(h for h, oid in asked.items() if oid not in out)
        raise ProtocolError(f"fetch: server omitted object {first[:12]}")
    return out


def parse_event(text: str, folder: str) -> HeadState | None:
    """The head in a ``hello`` (sent on subscribing) or ``head`` (a move) event for
    ``folder``; None for any other message, which is ignored."""
    doc = parse_json(text.encode(), "events")
    if not isinstance(doc, dict) or doc.get("folder") != folder:
        return None
    if doc.get("type") not in ("head", "hello"):
        return None
    return HeadState.from_wire(doc)


def check_log(entries: list[HeadLogEntry], after: int, limit: int) -> list[HeadLogEntry]:
    """Refuse a head log that is too long, unordered, or names malformed ids."""
    if len(entries) > limit:
        raise ProtocolError("head log: more entries than asked for")
    prev = after
    for e in entries:
        if (
            e.seq <= prev
            or not wire.HEX_ID.match(e.head)
            or not (
                e.previous is None
                or (isinstance(e.previous, str) and wire.HEX_ID.match(e.previous))
            )
        ):
            raise ProtocolError(f"head log: malformed or out-of-order entry {e.seq}")
        prev = e.seq
    return entries


def clean_reason(text: str, limit: int = 200) -> str:
    """One printable line from untrusted text, so a server cannot forge log lines."""
    line = (text.splitlines() or [""])[0]
    return "".join(ch if ch.isprintable() else "?" for ch in line)[:limit]


def parse_json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nesting
        raise ProtocolError(f"{what}: malformed JSON from the server") from exc


def status_error(status: int, reason: str, body: bytes, what: str) -> ChunksyncError:
    """The project error for an unexpected HTTP status, using the server's reason if any."""
    try:
        doc = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    said = doc.get("error")
    why = clean_reason(said if isinstance(said, str) and said else reason or f"HTTP {status}")
    msg = f"{what}: {why} (HTTP {status})"
    if status in (401, 403):
        return AuthError(msg)
    if status == 409:
        state = doc.get("current", doc)
        try:
            current = HeadState.from_wire(state)
        except ProtocolError:
            return RefConflict(msg)
        return RefConflict(msg, current=current.head, seq=current.seq)
    if status == wire.QUOTA_STATUS:
        return _insufficient_storage(doc, msg)
    if status == 429 or status >= 500:
        return ServerError(msg)
    return ProtocolError(msg)


def _insufficient_storage(doc: dict[str, Any], msg: str) -> ChunksyncError:
    """507 is either the owner's quota (final) or the server's disk (retry much later);
    the ``code`` field tells them apart (older servers: the message does)."""
    code = doc.get("code")
    said = doc.get("error")
    if code in ("storage_full", "storage_failed") or (
        code is None and isinstance(said, str) and said.startswith("server storage")
    ):
        return ServerStorageFull(msg)
    return QuotaExceeded(msg)


def field_of(doc: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """``doc[key]`` if ``doc`` is a JSON object and the value has the expected type."""
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, kind):
        raise ProtocolError(f"response lacks a valid {key!r} field")
    return value


def check_folder(name: str) -> None:
    if not isinstance(name, str) or not wire.FOLDER_NAME.match(name):
        raise ConfigError(f"invalid folder name {clean_reason(str(name))!r}")


def parse_keyslots(doc: Any) -> dict[str, bytes]:
    """``{"slots": {name: base64}}`` → name → blob, refusing bad names, sizes, base64."""
    slots = field_of(doc, "slots", dict)
    if len(slots) > wire.MAX_SLOTS:
        raise ProtocolError("key slots: too many slots")
    out: dict[str, bytes] = {}
    for name, text in slots.items():
        if not wire.SLOT_NAME.match(name) or not isinstance(text, str):
            raise ProtocolError("key slots: malformed slot")
        try:
            out[name] = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"key slot {name}: malformed base64") from exc
        if len(out[name]) > wire.MAX_KEYSLOT_BYTES:
            raise ProtocolError(f"key slot {name}: too large")
    return out
