"""Storage-lifecycle endpoints: retention policy, forget, prune (mark and sweep).

Every route that deletes or makes deletable — setting the policy, ``forget``, the
three prune steps — needs the folder's **owner** calling with a **maintenance** token
(``POST /v1/reauth``); a device token gets 403, which the error middleware audits.
The one exception is ``forget/policy``: the owner's device (its daemon) may apply the
policy the owner stored under re-authentication — it forgets exactly what that policy
says and deletes nothing (bytes go only with an owner's prune). Successful operations
are audited (``lifecycle.*``). See :mod:`chunksync_server.lifecycle` for why a sync
running meanwhile loses nothing.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from typing import Any

from aiohttp import web

from chunksync import retention, wire
from chunksync.errors import UserError

from .. import audit, db, lifecycle_db
from ..auth import SCOPE_MAINTENANCE
from ..lifecycle import Pruning, sweep_store
from .common import (
    DB,
    STORE,
    ApiError,
    change_epoch,
    folder_access,
    now,
    parse_ids,
    principal,
    read_json,
    remote,
    storage_call,
)

__all__ = [
    "PRUNING",
    "forget",
    "forget_policy",
    "get_lifecycle",
    "note_shown",
    "prune_live",
    "prune_start",
    "prune_sweep",
    "put_policy",
]

PRUNING = web.AppKey("pruning", Pruning)
log = logging.getLogger(__name__)
MAX_FORGET = 100_000


async def _owner(request: web.Request, *, maintenance: bool = True) -> db.FolderRow:
    row, role = await folder_access(request, write=True)
    if role != "owner":
        raise ApiError(403, f"only the owner of folder {row.name!r} can do this")
    if maintenance and principal(request).scope != SCOPE_MAINTENANCE:
        raise ApiError(
            403,
            "this needs the owner's fresh re-authentication (a maintenance token from "
            "POST /v1/reauth); device tokens can only add objects and advance the head",
        )
    return row


def _audit(request: web.Request, row: db.FolderRow, action: str, detail: dict[str, Any]) -> Any:
    who, t, address = principal(request), now(), remote(request)

    def write(conn: sqlite3.Connection) -> None:
        audit.append(
            conn,
            action=action,
            time=t,
            user=who.user,
            device=who.device_id,
            address=address,
            folder=row.name,
            detail=detail,
        )

    return write


def _protected(conn: sqlite3.Connection, row: db.FolderRow) -> dict[str, str]:
    """Snapshots forget never takes: the head, and the heads devices may base on."""
    out: dict[str, str] = {}
    for device, heads in lifecycle_db.device_heads(conn, row.id).items():
        for head in heads:
            out.setdefault(head, f"a base of device {device}")
    current, _ = db.head_of(conn, row.id)
    if current is not None:
        out[current] = "current head"
    return out


async def note_shown(
    request: web.Request, row: db.FolderRow, head: str | None, *, moved: bool = False
) -> None:
    """Remember that the caller's device was shown ``head`` (it may base on it next);
    ``moved``: it moved the head there itself (see lifecycle_db.note_device_head)."""
    if head is None:
        return
    who, cache = principal(request), request.app[PRUNING].shown
    key = (row.id, who.device_id)
    if cache.get(key) == head and not moved:
        return
    t = now()
    try:
        await request.app[DB].write(
            lambda c: lifecycle_db.note_device_head(c, row.id, who.device_id, head, t, moved=moved)
        )
    except (sqlite3.Error, OSError):  # best effort: a full disk must not fail a head read
        log.warning("could not record the head shown to device %s", who.device_id)
        return
    cache[key] = head


async def get_lifecycle(request: web.Request) -> web.Response:
    row, _ = await folder_access(request)

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        return {
            "policy": lifecycle_db.policy(conn, row.id),
            "protected": _protected(conn, row),
            "forgotten": sorted(lifecycle_db.forgotten(conn, row.id)),
            "last_prune": lifecycle_db.last_prune(conn, row.id),
        }

    return web.json_response(await request.app[DB].read(read))


async def put_policy(request: web.Request) -> web.Response:
    row = await _owner(request)
    doc = await read_json(request, {"policy": (dict, type(None))}, required=("policy",))
    try:
        policy = retention.Policy.from_json(doc["policy"]) if doc["policy"] is not None else None
    except UserError as exc:
        raise ApiError(400, exc.message) from exc
    value = policy.to_json() if policy is not None and not policy.empty else None
    note = _audit(request, row, "lifecycle.policy", {"policy": value})

    def store(conn: sqlite3.Connection) -> None:
        lifecycle_db.set_policy(conn, row.id, value)
        note(conn)

    await request.app[DB].write(store)
    return web.json_response({"policy": value})


def _forget_rows(request: web.Request, row: db.FolderRow, heads: list[str], reason: str) -> Any:
    note_audit = _audit(request, row, f"lifecycle.{reason}", {"snapshots": len(heads)})
    t = now()

    def work(conn: sqlite3.Connection) -> tuple[list[str], int]:
        protected = _protected(conn, row)
        if reason == "purge":  # erasing beats a device's merge convenience; never the head
            protected = {h: why for h, why in protected.items() if why == "current head"}
        refused = [h for h in heads if h in protected]
        if refused:
            return refused, 0
        logged = {
            r[0] for r in conn.execute("SELECT head FROM head_log WHERE folder_id = ?", (row.id,))
        }
        unknown = [h for h in heads if h not in logged]
        if unknown:
            raise ApiError(400, f"not a snapshot of this folder: {unknown[0]}")
        count = lifecycle_db.forget(conn, row.id, heads, t, reason)
        note_audit(conn)
        return [], count

    return work


async def forget(request: web.Request) -> web.Response:
    row = await _owner(request)
    doc = await read_json(request, {"snapshots": list, "reason": str}, required=("snapshots",))
    heads, _ = parse_ids(doc["snapshots"], MAX_FORGET, "snapshots")
    reason = doc.get("reason", "forget")
    if reason not in ("forget", "purge"):
        raise ApiError(400, "reason must be 'forget' or 'purge'")
    refused, count = await request.app[DB].write(_forget_rows(request, row, heads, reason))
    if refused:
        raise ApiError(
            409,
            "refusing to forget the current head or a snapshot a device bases on",
            protected=refused,
        )
    return web.json_response({"forgotten": count})


async def forget_policy(request: web.Request) -> web.Response:
    """Apply the stored policy (the owner's device token is enough: see module doc)."""
    row = await _owner(request, maintenance=False)

    def plan(conn: sqlite3.Connection) -> list[str] | None:
        stored = lifecycle_db.policy(conn, row.id)
        if stored is None:
            return None
        gone = lifecycle_db.forgotten(conn, row.id)
        snaps = [
            retention.Stamped(h, t)
            for h, t in conn.execute(
                "SELECT head, time FROM head_log WHERE folder_id = ?", (row.id,)
            )
            if h not in gone
        ]
        decision = retention.decide(
            retention.Policy.from_json(stored), snaps, _protected(conn, row)
        )
        return decision.forget

    heads = await request.app[DB].read(plan)
    if heads is None:
        raise ApiError(409, "this folder has no stored retention policy")
    if heads:
        refused, _ = await request.app[DB].write(_forget_rows(request, row, heads, "forget"))
        if refused:  # the head moved meanwhile: the next run decides again
            raise ApiError(409, "the history changed meanwhile; try again", protected=refused)
    return web.json_response({"forgotten": len(heads), "snapshots": heads})


async def prune_start(request: web.Request) -> web.Response:
    row = await _owner(request)
    store = request.app[STORE]
    head, seq = await request.app[DB].read(lambda c: db.head_of(c, row.id))
    candidates = frozenset(await storage_call(lambda: list(store.list(row.id))))  # type: ignore[attr-defined]
    session = request.app[PRUNING].start(row.id, principal(request).user, head, candidates)
    forgotten = await request.app[DB].read(lambda c: sorted(lifecycle_db.forgotten(c, row.id)))
    return web.json_response(
        {
            "prune": session.id,
            "head": head,
            "seq": seq,
            "forgotten": forgotten,
            "candidates": len(candidates),
        }
    )


def _session(request: web.Request, row: db.FolderRow) -> Any:
    prune_id = request.match_info["prune"]
    if not wire.PRUNE_ID.match(prune_id):
        raise ApiError(400, "malformed prune id")
    session = request.app[PRUNING].get(prune_id, row.id)
    if session is None:
        raise ApiError(404, "no such prune in progress (expired, replaced or server restarted)")
    return session


async def prune_live(request: web.Request) -> web.Response:
    row = await _owner(request)
    session = _session(request, row)
    doc = await read_json(request, {"ids": list}, required=("ids",), limit=wire.MAX_JSON_BYTES)
    _, ids = parse_ids(doc["ids"], wire.MAX_MISSING_IDS)
    session.live.update(ids)
    return web.json_response({"received": len(ids), "live": len(session.live)})


async def prune_sweep(request: web.Request) -> web.Response:
    row = await _owner(request)
    session = _session(request, row)
    doc = await read_json(request, {"head": (str, type(None)), "purge": bool}, required=("head",))
    expected, purge = doc["head"], doc.get("purge", False)
    pruning = request.app[PRUNING]

    def begin(conn: sqlite3.Connection) -> tuple[bool, str | None, int]:
        head, seq = db.head_of(conn, row.id)
        if head != expected:
            return False, head, seq
        return pruning.begin_sweep(row.id), head, seq

    ok, head, seq = await request.app[DB].write(begin)
    if not ok:
        raise ApiError(
            409,
            "the head moved since the mark (or a sweep is running): mark the new "
            "snapshots and sweep again",
            head=head,
            seq=seq,
        )
    result = await sweep_store(
        request.app[STORE],
        row.id,
        session,
        pruning,
        functools.partial(change_epoch, request.app),
        purge=purge,
    )
    pruning.finish(session.id)
    summary = {**result.to_json(), "time": now(), "user": principal(request).user}
    note = _audit(request, row, "lifecycle.prune", result.to_json())

    def done(conn: sqlite3.Connection) -> None:
        lifecycle_db.set_last_prune(conn, row.id, summary)
        note(conn)

    await request.app[DB].write(done)
    return web.json_response(result.to_json())
