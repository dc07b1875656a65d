"""Shared plumbing of the HTTP handlers: typed app/request keys, errors, JSON input.

* :class:`ApiError` is the only way a handler refuses a request; the error middleware
  in :mod:`chunksync_server.app` turns it into ``{"error": "one line", ...extra}`` with its
  status, and audits 401/403.
* :func:`read_json` reads a JSON body **incrementally** under a byte cap (413 past it,
  by Content-Length or while streaming), requires an object and refuses unknown
  fields, so a typo in a client never passes silently. It is the one JSON parser of
  the server (:func:`parse_json`): nesting too deep, integers outside int64, NaN and
  infinities are 400, never a crash; :func:`query_int` does the same for query ints.
* :func:`folder_access` resolves a folder name to its row and the caller's role,
  refusing non-members (403) and read-only members on writes (403).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from chunksync import wire

from .. import audit, db
from ..auth import LoginLimiter, Principal
from ..config import ServerConfig
from ..events import EventHub
from ..metrics import Metrics
from ..quota import QuotaTracker
from ..storage.base import StorageError, StorageFull

__all__ = [
    "CONFIG",
    "DB",
    "EPOCH",
    "HUB",
    "INT_MAX",
    "INT_MIN",
    "LIMITER",
    "METRICS",
    "PRINCIPAL",
    "QUOTAS",
    "SHARED_EPOCH",
    "STORE",
    "ApiError",
    "folder_access",
    "parse_json",
    "principal",
    "query_int",
    "read_json",
    "record",
    "storage_call",
    "storage_epoch",
    "storage_refusal",
]

log = logging.getLogger("chunksync_server.storage")

#: ``code`` of a 507 answer: the server's disk is full or failing (not the user's quota)
STORAGE_FULL_CODE = "storage_full"
STORAGE_FAILED_CODE = "storage_failed"
STORAGE_FULL_MESSAGE = "server storage is full"

CONFIG = web.AppKey("config", ServerConfig)
DB = web.AppKey("db", db.MetaDB)
STORE = web.AppKey("store", object)  # chunksync_server.storage.ObjectStore (structural)
HUB = web.AppKey("hub", EventHub)
METRICS = web.AppKey("metrics", Metrics)
LIMITER = web.AppKey("limiter", LoginLimiter)
QUOTAS = web.AppKey("quotas", QuotaTracker)
EPOCH = web.AppKey("epoch", str)  # this process's start token (chunksync_server.epoch)
#: True when the store is shared by several servers: the epoch lives in the database
SHARED_EPOCH = web.AppKey("shared_epoch", bool)


async def storage_epoch(app: web.Application) -> str:
    """The storage epoch clients compare (see chunksync_server/epoch.py)."""
    from ..epoch import current_epoch

    if app.get(SHARED_EPOCH):
        return await app[DB].read(
            lambda c: str(
                c.execute("SELECT value FROM cluster_state WHERE name = 'epoch'").fetchone()[0]
            )
        )
    return current_epoch(app[CONFIG].data_dir, app[EPOCH])


def epoch_in(conn: sqlite3.Connection, app: web.Application) -> str:
    """:func:`storage_epoch` inside a database transaction (the head CAS checks it there)."""
    from ..epoch import current_epoch, shared_epoch

    if app.get(SHARED_EPOCH):
        return shared_epoch(conn)
    return current_epoch(app[CONFIG].data_dir, app[EPOCH])


def change_epoch(app: web.Application) -> None:
    """Objects may have been lost or deleted just now: every client re-checks what it
    cached (blocking; for store worker threads and the prune's sweep)."""
    from ..epoch import bump_shared_epoch, mark_repaired

    if app.get(SHARED_EPOCH):  # every server of the cluster answers the new epoch
        app[DB].write_sync(bump_shared_epoch)
    else:
        mark_repaired(app[CONFIG].data_dir)


PRINCIPAL = web.RequestKey("principal", Principal)

WRITE_ROLES = ("owner", "read-write")
#: the integer range every number from a client must fit (SQLite INTEGER, int64)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_QUERY_INT = re.compile(r"\A-?[0-9]{1,19}\Z")  # ASCII digits only: int() takes more


class ApiError(Exception):
    """A refused request: HTTP status, one-line message, optional extra JSON fields."""

    def __init__(self, status: int, message: str, *, audited: bool = False, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.audited = audited  # True when the handler already wrote the audit row
        self.extra = extra

    def response(self) -> web.Response:
        body = {**self.extra, **wire.error_body(self.message)}
        return web.json_response(body, status=self.status)


def storage_refusal(exc: StorageError, *, write: bool) -> ApiError:
    """The answer to a failed store call: 507 on the write path, 503 on reads.

    Why not a 500: a full or failing disk is the server's state, not a bug; the client
    needs a stable status and ``code`` to tell it from a quota refusal and to back off
    instead of retrying at once. One log line, no traceback.
    """
    log.warning("object store %s failed: %s", "write" if write else "read", exc.message)
    if isinstance(exc, StorageFull):
        return ApiError(wire.QUOTA_STATUS, STORAGE_FULL_MESSAGE, code=STORAGE_FULL_CODE)
    if write:
        return ApiError(
            wire.QUOTA_STATUS, f"server storage failed: {exc.message}", code=STORAGE_FAILED_CODE
        )
    return ApiError(503, f"server storage unavailable: {exc.message}", code=STORAGE_FAILED_CODE)


async def storage_call(fn: Any, *args: Any, write: bool = False) -> Any:
    """``fn(*args)`` on a worker thread, a StorageError turned into :func:`storage_refusal`."""
    try:
        return await asyncio.to_thread(fn, *args)
    except StorageError as exc:
        raise storage_refusal(exc, write=write) from exc


def now() -> float:
    return time.time()


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def remote(request: web.Request) -> str:
    return request.remote or "?"


async def read_limited(request: web.Request, limit: int, what: str = "body") -> bytes:
    """The whole body, refusing (413) anything over ``limit`` without buffering it."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"{what} too large ({length} > {limit} bytes)")
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"{what} too large (over {limit} bytes)")
        parts.append(chunk)
    return b"".join(parts)


async def read_json(
    request: web.Request,
    fields: Mapping[str, type | tuple[type, ...]],
    *,
    required: tuple[str, ...] = (),
    limit: int | None = None,
) -> dict[str, Any]:
    """A JSON object with only the given fields (checked by type); see module doc."""
    cap = limit if limit is not None else request.app[CONFIG].max_json_bytes
    raw = await read_limited(request, cap, "JSON body")
    doc = parse_json(raw) if len(raw) < 65536 else await asyncio.to_thread(parse_json, raw)
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid JSON: expected an object")
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}")
    for name in required:
        if name not in doc:
            raise ApiError(400, f"missing field {name!r}")
    for name, value in doc.items():
        if not _type_ok(value, _as_tuple(fields[name])):
            raise ApiError(400, f"field {name!r} has the wrong type")
    return doc


def _bounded_int(text: str) -> int:
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError("integer out of range")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Decode a client's JSON strictly; any malformed input is ``ApiError(400)``.

    Why here: ``json.loads`` raises RecursionError on deep nesting, accepts NaN and
    Infinity, and returns integers no database column can hold; each of those used to
    surface as a 500 somewhere further down.
    """
    try:
        return json.loads(
            raw, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
        )
    except RecursionError as exc:
        raise ApiError(400, "invalid JSON: nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"invalid JSON: {str(exc)[:200]}") from exc


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The query parameter ``name`` as an integer in ``low..high`` (400 otherwise)."""
    text = request.query.get(name)
    if text is None:
        return default
    if not _QUERY_INT.match(text) or not low <= (value := int(text)) <= high:
        raise ApiError(400, f"query parameter {name!r} must be an integer in {low}..{high}")
    return value


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not an integer here
    return isinstance(value, types)


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def parse_ids(value: Any, limit: int, what: str = "ids") -> tuple[list[str], list[bytes]]:
    """Validate hex ids in bulk; return them (unique, order kept) and as 32-byte values."""
    if not isinstance(value, list):
        raise ApiError(400, f"{what}: expected a list")
    if len(value) > limit:
        raise ApiError(413, f"{what}: too many ({len(value)} > {limit})")
    if not value:
        return [], []
    if set(map(type, value)) != {str} or set(map(len, value)) != {64}:
        raise ApiError(400, f"{what}: malformed object id")
    joined = "".join(value)
    try:
        raw = bytes.fromhex(joined)  # fromhex skips whitespace: caught by the length
    except ValueError:
        raw = b""
    if len(raw) != 32 * len(value) or joined.lower() != joined:
        raise ApiError(400, f"{what}: malformed object id")
    ids = [raw[i : i + 32] for i in range(0, len(raw), 32)]
    unique = dict.fromkeys(ids)
    if len(unique) != len(ids):
        ids = list(unique)
        return [b.hex() for b in ids], ids
    return value, ids


def object_id(text: str) -> bytes:
    if not wire.HEX_ID.match(text):
        raise ApiError(400, "malformed object id")
    return bytes.fromhex(text)


async def folder_access(request: web.Request, *, write: bool = False) -> tuple[db.FolderRow, str]:
    """The folder named in the URL and the caller's role, or 404/403."""
    name = request.match_info["folder"]
    if not wire.FOLDER_NAME.match(name):
        raise ApiError(400, "malformed folder name")
    who = principal(request)

    def lookup(conn: Any) -> tuple[db.FolderRow | None, str | None]:
        row = db.folder_by_name(conn, name)
        return row, (db.role_of(conn, row.id, who.user_id) if row else None)

    row, role = await request.app[DB].read(lookup)
    if row is None:
        raise ApiError(404, f"no folder {name!r}")
    if role is None:
        raise ApiError(403, f"not a member of folder {name!r}")
    if write and role not in WRITE_ROLES:
        raise ApiError(403, f"role {role} cannot write to folder {name!r}")
    return row, role


async def record(
    request: web.Request,
    action: str,
    *,
    folder: str | None = None,
    detail: Mapping[str, Any] | None = None,
    user: str | None = None,
    device: str | None = None,
) -> None:
    """Append an audit row for this request (own transaction)."""
    who = request.get(PRINCIPAL)
    at, address = now(), remote(request)
    user = user if user is not None else (who.user if who else None)
    device = device if device is not None else (who.device_id if who else None)
    await request.app[DB].write(
        lambda conn: audit.append(
            conn,
            action=action,
            time=at,
            user=user,
            device=device,
            address=address,
            folder=folder,
            detail=detail,
        )
    )
