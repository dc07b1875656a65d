"""Folder endpoints: create/list/get, key slots, the head (read and compare-and-swap),
the head log and the events WebSocket.

The head is the only mutable state of a folder. ``PUT head`` moves it only if the
caller names the current head as ``expected`` (409 with the current state otherwise)
and only to an object the store holds (400 otherwise). The check, the update, the
head-log row and the audit row share one ``BEGIN IMMEDIATE`` transaction, so
concurrent writers — other requests or other processes — see exactly one winner per
base and the log is a single chain. Because the server cannot read commits, a device
cannot rewind history except by naming the current head, and no route deletes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import sqlite3
from typing import Any

from aiohttp import WSMsgType, web

from chunksync import wire

from .. import audit, db
from ..events import Subscriber, head_event
from ..fanout import announce_head
from .common import (
    DB,
    HUB,
    INT_MAX,
    METRICS,
    STORE,
    ApiError,
    epoch_in,
    folder_access,
    now,
    principal,
    query_int,
    read_json,
    remote,
    storage_call,
    storage_epoch,
)
from .lifecycle import PRUNING, note_shown

__all__ = [
    "create_folder",
    "events",
    "get_folder",
    "get_head",
    "get_keyslots",
    "get_log",
    "list_folders",
    "put_head",
    "put_keyslot",
]

LOG_LIMIT_MAX = 1000
STORAGE_CHANGED = "the server's storage changed since this sync began; sync again"


def folder_doc(row: db.FolderRow, role: str) -> dict[str, Any]:
    return {
        "name": row.name,
        "owner": row.owner,
        "role": role,
        "head": row.head,
        "seq": row.seq,
        "created": row.created,
    }


async def list_folders(request: web.Request) -> web.Response:
    who = principal(request)
    rows = await request.app[DB].read(lambda c: db.folders_of_user(c, who.user_id))
    return web.json_response({"folders": [folder_doc(row, role) for row, role in rows]})


async def create_folder(request: web.Request) -> web.Response:
    doc = await read_json(request, {"name": str}, required=("name",), limit=4096)
    name = doc["name"]
    if not wire.FOLDER_NAME.match(name):
        raise ApiError(400, "malformed folder name")
    who, t, address = principal(request), now(), remote(request)

    def create(conn: sqlite3.Connection) -> db.FolderRow | None:
        if not db.create_folder(conn, secrets.token_hex(16), name, who.user_id, t):
            return None
        audit.append(
            conn,
            action="folder.create",
            time=t,
            user=who.user,
            device=who.device_id,
            address=address,
            folder=name,
        )
        return db.folder_by_name(conn, name)

    row = await request.app[DB].write(create)
    if row is None:
        raise ApiError(409, f"folder {name!r} already exists")
    return web.json_response(folder_doc(row, "owner"), status=201)


async def get_folder(request: web.Request) -> web.Response:
    row, role = await folder_access(request)
    members = await request.app[DB].read(lambda c: db.members_of(c, row.id))
    return web.json_response({**folder_doc(row, role), "members": members})


async def get_keyslots(request: web.Request) -> web.Response:
    row, _ = await folder_access(request)
    slots = await request.app[DB].read(lambda c: db.keyslots_of(c, row.id))
    return web.json_response(
        {"slots": {name: base64.b64encode(blob).decode() for name, blob in slots.items()}}
    )


async def put_keyslot(request: web.Request) -> web.Response:
    """Body ``{"blob": "<base64>"}``; creates (201) or replaces (200) the slot."""
    row, _ = await folder_access(request, write=True)
    slot = request.match_info["slot"]
    if not wire.SLOT_NAME.match(slot):
        raise ApiError(400, "malformed key slot name")
    doc = await read_json(
        request, {"blob": str}, required=("blob",), limit=wire.MAX_KEYSLOT_BYTES * 2
    )
    try:
        blob = base64.b64decode(doc["blob"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "blob: invalid base64") from exc
    if not blob or len(blob) > wire.MAX_KEYSLOT_BYTES:
        raise ApiError(413 if blob else 400, f"blob: size must be 1..{wire.MAX_KEYSLOT_BYTES}")
    who, t, address = principal(request), now(), remote(request)

    def store(conn: sqlite3.Connection) -> bool | None:
        created = db.put_keyslot(conn, row.id, slot, blob, t, wire.MAX_SLOTS)
        if created is not None:
            audit.append(
                conn,
                action="keyslot.put",
                time=t,
                user=who.user,
                device=who.device_id,
                address=address,
                folder=row.name,
                detail={"slot": slot, "created": created, "bytes": len(blob)},
            )
        return created

    created = await request.app[DB].write(store)
    if created is None:
        raise ApiError(409, f"folder already has {wire.MAX_SLOTS} key slots")
    return web.json_response({"slot": slot, "created": created}, status=201 if created else 200)


async def get_head(request: web.Request) -> web.Response:
    row, _ = await folder_access(request)
    epoch = await storage_epoch(request.app)
    await note_shown(request, row, row.head)  # the device may base on it: forget keeps it
    return web.json_response(wire.HeadState(row.head, row.seq, epoch).to_wire())


async def put_head(request: web.Request) -> web.Response:
    row, _ = await folder_access(request, write=True)
    doc = await read_json(
        request,
        {"expected": (str, type(None)), "new": str, "epoch": str},
        required=("expected", "new"),
        limit=4096,
    )
    expected, new, round_epoch = doc["expected"], doc["new"], doc.get("epoch")
    if not wire.HEX_ID.match(new) or (expected is not None and not wire.HEX_ID.match(expected)):
        raise ApiError(400, "malformed object id")
    app, pruning = request.app, request.app[PRUNING]
    await pruning.wait_swept(row.id)  # a head move waits out a running sweep (lifecycle.py)
    if round_epoch is not None and round_epoch != await storage_epoch(app):
        # before the "is it stored" check: a prune may have swept this very commit
        state = wire.HeadState(*(await request.app[DB].read(lambda c: db.head_of(c, row.id))))
        if state.head != new:
            raise ApiError(409, STORAGE_CHANGED, **state.to_wire(), code="storage_changed")
    store = request.app[STORE]
    present = await storage_call(store.has_many, row.id, [bytes.fromhex(new)])  # type: ignore[attr-defined]
    if not present:
        raise ApiError(400, "new head object is not stored on the server")
    who, t, address = principal(request), now(), remote(request)
    refusal: list[str] = []

    def cas(conn: sqlite3.Connection) -> tuple[bool, str | None, int, bool]:
        old_head, old_seq = db.head_of(conn, row.id)
        # a prune may have swept what this round's uploads relied on (lifecycle.py)
        if pruning.sweeping(row.id):
            refusal.append("a prune is sweeping this folder; sync again")
        elif round_epoch is not None and round_epoch != epoch_in(conn, app):
            refusal.append(STORAGE_CHANGED)
        if refusal and new != old_head:
            return False, old_head, old_seq, False
        ok, head, seq = db.cas_head(
            conn, row.id, expected, new, device=who.device_id, user=who.user, now=t
        )
        moved = ok and seq != old_seq
        if moved:
            announce_head(conn, row.name, head, seq)
            audit.append(
                conn,
                action="head.move",
                time=t,
                user=who.user,
                device=who.device_id,
                address=address,
                folder=row.name,
                detail={"previous": expected, "head": new, "seq": seq},
            )
        return ok, head, seq, moved

    ok, head, seq, moved = await request.app[DB].write(cas)
    state = wire.HeadState(head, seq)
    if not ok:
        why = refusal[0] if refusal else "head moved: expected is not the current head"
        code: dict[str, Any] = {"code": "storage_changed"} if refusal else {}
        raise ApiError(409, why, **state.to_wire(), **code)
    await note_shown(request, row, head, moved=moved)
    if moved:
        request.app[METRICS].head_moves.inc()
        await request.app[HUB].publish(row.name, head, seq)
    return web.json_response(state.to_wire())


async def get_log(request: web.Request) -> web.Response:
    row, _ = await folder_access(request)
    after = query_int(request, "after", 0, 0, INT_MAX)
    limit = query_int(request, "limit", 100, 1, LOG_LIMIT_MAX)
    unknown = sorted(set(request.query) - {"after", "limit"})
    if unknown:  # as with JSON fields: a typo must not pass silently
        raise ApiError(400, f"unknown query parameter {unknown[0][:64]!r}")
    rows = await request.app[DB].read(lambda c: db.head_log(c, row.id, after, limit))
    entries = [wire.HeadLogEntry(*r).to_wire() for r in rows]
    return web.json_response({"entries": entries})


async def events(request: web.Request) -> web.StreamResponse:
    row, _ = await folder_access(request)
    who = principal(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    if not ws.can_prepare(request).ok:  # say why, not aiohttp's bare "Bad Request"
        raise ApiError(400, "events: expected a WebSocket upgrade request")
    await ws.prepare(request)
    hub = request.app[HUB]
    sub = Subscriber(row.name, who.device_id, who.token_hash, ws)
    hub.subscribe(sub)
    try:
        head, seq = await request.app[DB].read(lambda c: db.head_of(c, row.id))
        await ws.send_str(head_event("hello", row.name, head, seq))
        async for msg in ws:  # clients need not send anything; drain until closed
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        hub.unsubscribe(sub)
    return ws
