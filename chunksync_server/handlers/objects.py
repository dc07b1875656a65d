"""Object endpoints: the "which are missing" query, uploads and downloads.

Uploads are **streamed**: bodies are read incrementally from ``request.content`` and
never buffered beyond one frame plus one flush group. A body is refused with 413 by its
Content-Length, or as soon as the bytes read exceed the cap (a chunked body is cut off,
not drained). Every frame's length is checked before its blob is read and its BLAKE3
digest before it is stored, so a truncated or corrupted frame never becomes visible.

Batch upload rule (documented in docs/protocol.md): frames are stored in groups of
about :data:`FLUSH_BYTES` through one ``put_many`` each (one durability barrier per
group). When a frame is bad (truncated, oversized, digest mismatch), every verified
frame *before* it is kept — harmless, since objects are content-addressed and uploads
idempotent — and the bad frame and everything after it are not; the 400/413 answer
says how many frames were accepted. The client simply retries the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from chunksync import wire
from chunksync.errors import ObjectNotFound

from ..storage.base import StorageError
from .common import (
    CONFIG,
    DB,
    METRICS,
    QUOTAS,
    STORE,
    ApiError,
    folder_access,
    object_id,
    parse_ids,
    read_json,
    read_limited,
    storage_call,
    storage_refusal,
)

__all__ = ["fetch_batch", "get_object", "missing", "put_object", "upload_batch"]

FLUSH_BYTES = 16 * 1024 * 1024
QUOTA_CODE = "quota_exceeded"  # ``code`` of a 507 for the owner's quota (not a full disk)
FETCH_GROUP = 32  # objects per get_many while streaming a fetch
_UP = wire.UPLOAD_FRAME_HEADER
_DOWN = wire.DOWNLOAD_FRAME_HEADER

Frame = tuple[bytes, bytes, bytes]  # (id, digest, blob)


def verify_and_store(store: Any, ns: str, frames: Sequence[Frame]) -> tuple[int, int, int | None]:
    """Store the frames before the first digest mismatch (worker thread).

    Returns (frames accepted, objects new, index of the bad frame or None).
    """
    good = len(frames)
    for index, (_, digest, blob) in enumerate(frames):
        if wire.blob_digest(blob) != digest:
            good = index
            break
    new = store.put_many(ns, [(oid, blob) for oid, _, blob in frames[:good]]) if good else 0
    return good, new, (good if good < len(frames) else None)


async def missing(request: web.Request) -> web.Response:
    row, _ = await folder_access(request)
    doc = await read_json(request, {"ids": list}, required=("ids",))
    store = request.app[STORE]

    def query() -> str:
        ids, raw = parse_ids(doc["ids"], wire.MAX_MISSING_IDS)
        present = store.has_many(row.id, raw)  # type: ignore[attr-defined]
        absent = [h for h, b in zip(ids, raw) if b not in present]
        # ids are validated lowercase hex, so joining them is valid JSON (and 10x faster)
        return '{"missing":[' + ",".join(f'"{h}"' for h in absent) + "]}"

    return web.Response(text=await storage_call(query), content_type="application/json")


async def _enforce_quota(request: web.Request, row: Any, incoming: int) -> None:
    try:
        refusal = await request.app[QUOTAS].check(
            request.app[DB], request.app[STORE], row.owner, incoming
        )
    except StorageError as exc:
        raise storage_refusal(exc, write=False) from exc
    if refusal is not None:
        raise ApiError(wire.QUOTA_STATUS, refusal, code=QUOTA_CODE)


async def put_object(request: web.Request) -> web.Response:
    row, _ = await folder_access(request, write=True)
    oid = object_id(request.match_info["oid"])
    digest_hex = request.headers.get(wire.DIGEST_HEADER, "")
    if not wire.HEX_ID.match(digest_hex):
        raise ApiError(400, f"missing or malformed {wire.DIGEST_HEADER} header")
    cfg = request.app[CONFIG]
    blob = await read_limited(request, cfg.max_blob_size, "object")
    await _enforce_quota(request, row, len(blob))
    store = request.app[STORE]
    good, new, _ = await storage_call(
        verify_and_store, store, row.id, [(oid, bytes.fromhex(digest_hex), blob)], write=True
    )
    if not good:
        raise ApiError(400, "digest mismatch: body does not match " + wire.DIGEST_HEADER)
    metrics = request.app[METRICS]
    metrics.bytes_in.inc(len(blob))
    metrics.objects_stored.inc(new)
    if new:
        request.app[QUOTAS].add(row.owner, len(blob))
    return web.json_response({"stored": new}, status=201 if new else 200)


async def upload_batch(request: web.Request) -> web.Response:
    row, _ = await folder_access(request, write=True)
    if request.content_type != wire.BATCH_TYPE:
        raise ApiError(415, f"batch upload needs Content-Type {wire.BATCH_TYPE}")
    cfg = request.app[CONFIG]
    if request.content_length is not None and request.content_length > cfg.max_batch_bytes:
        raise ApiError(413, f"batch too large ({request.content_length} > {cfg.max_batch_bytes})")
    await _enforce_quota(request, row, request.content_length or 0)
    store, metrics = request.app[STORE], request.app[METRICS]
    reader = request.content
    totals = {"frames": 0, "accepted": 0, "new": 0, "bytes": 0}
    pending: list[Frame] = []
    pending_bytes = 0
    flushing: asyncio.Task[tuple[int, int, int | None]] | None = None
    failure: ApiError | None = None
    mismatch = False

    async def store_frames(frames: list[Frame]) -> tuple[int, int, int | None]:
        return await storage_call(verify_and_store, store, row.id, frames, write=True)  # type: ignore[no-any-return]

    async def settle() -> None:
        nonlocal flushing, mismatch
        if flushing is None:
            return
        good, new, bad = await flushing
        flushing = None
        totals["accepted"] += good
        totals["new"] += new
        if bad is not None:
            mismatch = True
            raise ApiError(400, f"digest mismatch in frame {totals['accepted']}")

    try:
        while True:
            header = await _read_header(reader)
            if header is None:
                break
            oid, digest, length = _UP.unpack(header)
            totals["frames"] += 1
            totals["bytes"] += _UP.size + length
            if totals["frames"] > cfg.max_batch_objects:
                raise ApiError(413, f"batch has more than {cfg.max_batch_objects} frames")
            if length > cfg.max_blob_size:
                raise ApiError(413, f"frame {totals['frames'] - 1}: object too large ({length})")
            if totals["bytes"] > cfg.max_batch_bytes:
                raise ApiError(413, f"batch too large (over {cfg.max_batch_bytes} bytes)")
            try:
                blob = await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise ApiError(
                    400, f"truncated batch: frame {totals['frames'] - 1} cut short"
                ) from exc
            pending.append((oid, digest, blob))
            pending_bytes += length
            if pending_bytes >= FLUSH_BYTES:
                await settle()
                flushing = asyncio.create_task(store_frames(pending))
                pending, pending_bytes = [], 0
        await settle()
        if pending:
            flushing = asyncio.create_task(store_frames(pending))
            pending = []
            await settle()
    except ApiError as exc:
        failure = exc
    if failure is not None and failure.status != wire.QUOTA_STATUS:
        # keep the verified frames read before the bad one (see module docstring)
        try:
            await settle()
            if pending:
                flushing = asyncio.create_task(store_frames(pending))
                await settle()
        except ApiError as exc:
            failure = exc  # a mismatch found now lies before the frame that failed
    elif flushing is not None:  # the store failed: let the batch in flight finish, no more
        with contextlib.suppress(ApiError):
            await settle()
    metrics.objects_stored.inc(totals["new"])
    metrics.bytes_in.inc(totals["bytes"])
    if totals["new"]:
        request.app[QUOTAS].add(row.owner, totals["bytes"])
    if failure is not None:
        failure.extra["accepted"] = totals["accepted"]
        raise failure
    return web.json_response({"received": totals["frames"], "stored": totals["new"]})


async def _read_header(reader: Any) -> bytes | None:
    """The next frame header, None at a clean end of body, 400 if cut short."""
    try:
        return bytes(await reader.readexactly(_UP.size))
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ApiError(400, "truncated batch: frame header cut short") from exc
    except ConnectionError as exc:
        raise ApiError(400, "truncated batch: connection lost") from exc


async def get_object(request: web.Request) -> web.Response:
    row, _ = await folder_access(request)
    oid = object_id(request.match_info["oid"])
    try:
        blob = await storage_call(request.app[STORE].get, row.id, oid)  # type: ignore[attr-defined]
    except ObjectNotFound as exc:
        raise ApiError(404, f"no object {oid.hex()}") from exc
    request.app[METRICS].bytes_out.inc(len(blob))
    return web.Response(body=blob, content_type=wire.BLOB_TYPE)


async def fetch_batch(request: web.Request) -> web.StreamResponse:
    row, _ = await folder_access(request)
    doc = await read_json(request, {"ids": list}, required=("ids",))
    ids, raw = parse_ids(doc["ids"], request.app[CONFIG].max_batch_objects)
    store, metrics = request.app[STORE], request.app[METRICS]
    present = await storage_call(store.has_many, row.id, raw)  # type: ignore[attr-defined]
    absent = [h for h, b in zip(ids, raw) if b not in present]
    if absent:
        raise ApiError(404, f"{len(absent)} object(s) not found", missing=absent)
    groups = [raw[start : start + FETCH_GROUP] for start in range(0, len(raw), FETCH_GROUP)]
    first: dict[bytes, bytes] = {}
    if groups:  # read before the status is sent, so damage found here is a clean 404
        try:
            first = await asyncio.to_thread(store.get_many, row.id, groups[0])  # type: ignore[attr-defined]
        except StorageError as exc:
            raise storage_refusal(exc, write=False) from exc
        lost = [oid.hex() for oid in groups[0] if oid not in first]
        if lost:  # found damaged and quarantined just now: missing, as has_many says next
            raise ApiError(404, f"{len(lost)} object(s) not found", missing=lost)
    response = web.StreamResponse(headers={"Content-Type": wire.BATCH_TYPE})
    await response.prepare(request)
    for number, group in enumerate(groups):
        if number == 0:
            blobs = first
        else:
            try:
                blobs = await asyncio.to_thread(store.get_many, row.id, group)  # type: ignore[attr-defined]
            except StorageError as exc:  # the status is sent: all we can do is cut the body
                storage_refusal(exc, write=False)
                raise ConnectionResetError("object store failed during fetch") from exc
        if len(blobs) != len(group):  # vanished, or found damaged and quarantined
            raise ConnectionResetError("object vanished during fetch")  # aborts the body
        for one in group:
            blob = blobs[one]
            await response.write(_DOWN.pack(one, len(blob)) + blob)
            metrics.bytes_out.inc(len(blob))
    await response.write_eof()
    return response
