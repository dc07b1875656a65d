"""The dashboard's routes: pages, the few POST actions, the event stream, the API.

Pages (GET, rendered from ``templates/``): ``/`` every folder at a glance; ``/f/{i}``
one folder (state, failed items, conflicts with their buttons, controls); ``/f/{i}/history``
its snapshots (``?path=P``: one file's history), each with a restore form; ``/devices``
this device and the others. Actions (POST, CSRF-checked, answered with a redirect back
carrying a one-line message): ``/f/{i}/control``, ``/f/{i}/resolve``, ``/f/{i}/restore``.
``/events``: server-sent events with every folder's status whenever it changes.
``/api/folders``: the same status as JSON. ``/metrics``: Prometheus text.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from ..errors import ChunksyncError
from ..webguard import Guard, session_of
from . import actions
from .actions import error_text, status_of
from .login import LinkChecker
from .metrics import CONTENT_TYPE, ClientMetrics

if TYPE_CHECKING:
    from ..daemon import FolderDaemon

__all__ = ["DAEMONS", "GUARD", "LINKS", "METRICS", "add_routes", "status_of"]

GUARD = web.AppKey("guard", Guard)
DAEMONS = web.AppKey("daemons", list)
LINKS = web.AppKey("links", LinkChecker)
METRICS = web.AppKey("metrics", ClientMetrics)
EVENT_INTERVAL = 0.25
KEEPALIVE = 15.0


def add_routes(app: web.Application, static: Path) -> None:
    r = app.router
    r.add_get("/login", login)
    r.add_get("/", overview)
    r.add_get("/f/{i:\\d+}", folder_page)
    r.add_get("/f/{i:\\d+}/history", history_page)
    r.add_get("/devices", devices_page)
    r.add_post("/f/{i:\\d+}/control", control)
    r.add_post("/f/{i:\\d+}/resolve", resolve)
    r.add_post("/f/{i:\\d+}/undo-merge", undo_merge)
    r.add_post("/f/{i:\\d+}/restore", restore)
    r.add_get("/events", events)
    r.add_get("/api/folders", api_folders)
    r.add_get("/metrics", metrics)
    r.add_static("/static/", static, append_version=False)


def _daemon(request: web.Request) -> tuple[int, FolderDaemon]:
    daemons = request.app[DAEMONS]
    i = int(request.match_info["i"])
    if i >= len(daemons):
        raise web.HTTPNotFound(text="no such folder")
    return i, daemons[i]


def _context(request: web.Request, page: str, **extra: Any) -> dict[str, Any]:
    session = session_of(request)
    return {
        "page": page,
        "csrf": session.csrf if session else "",
        "folders": [status_of(d) for d in request.app[DAEMONS]],
        "message": request.query.get("msg", "")[:300],
        "error": request.query.get("error", "")[:300],
        **extra,
    }


def _back(where: str, message: str = "", error: str = "", **query: str) -> web.HTTPSeeOther:
    """Back to the page ``where`` with a one-line message (Post/Redirect/Get)."""
    params = {k: v for k, v in {**query, "msg": message, "error": error}.items() if v}
    return web.HTTPSeeOther(f"{where}?{urlencode(params)}" if params else where)


async def login(request: web.Request) -> web.StreamResponse:
    q = request.query
    if not request.app[LINKS].accept(q.get("n", ""), q.get("t", ""), q.get("m", "")):
        raise web.HTTPForbidden(
            text="this login link is not valid (used already, or older than 5 minutes): "
            "run 'chunksync ui' again for a new one"
        )
    guard = request.app[GUARD]
    response = web.Response(status=303, headers={"Location": "/"})
    guard.set_cookie(response, guard.start(), secure=False)
    return response


@aiohttp_jinja2.template("overview.html")
async def overview(request: web.Request) -> dict[str, Any]:
    return _context(request, "overview")


@aiohttp_jinja2.template("folder.html")
async def folder_page(request: web.Request) -> dict[str, Any]:
    i, daemon = _daemon(request)
    try:
        conflicts, conflicts_error = await actions.conflicts(daemon), ""
        merges = await actions.merges(daemon)
    except (ChunksyncError, OSError) as exc:
        conflicts, merges, conflicts_error = [], [], error_text(exc)
    return _context(
        request,
        "folder",
        i=i,
        folder=status_of(daemon),
        conflicts=conflicts,
        merges=merges,
        conflicts_error=conflicts_error,
    )


@aiohttp_jinja2.template("history.html")
async def history_page(request: web.Request) -> dict[str, Any]:
    i, daemon = _daemon(request)
    path = request.query.get("path", "").strip()[:4096]
    try:
        rows, problem = await actions.history(daemon, path or None), ""
    except (ChunksyncError, OSError) as exc:
        rows, problem = [], error_text(exc)
    return _context(
        request,
        "history",
        i=i,
        folder=status_of(daemon),
        path=path,
        rows=rows,
        history_error=problem,
    )


@aiohttp_jinja2.template("devices.html")
async def devices_page(request: web.Request) -> dict[str, Any]:
    per_folder = []
    for daemon in request.app[DAEMONS]:
        try:
            rows = await actions.history(daemon)
            per_folder.append((status_of(daemon), actions.peers(daemon, rows), ""))
        except (ChunksyncError, OSError) as exc:
            per_folder.append((status_of(daemon), [], error_text(exc)))
    return _context(request, "devices", per_folder=per_folder)


async def _form(request: web.Request) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.post()).items()}


async def control(request: web.Request) -> web.StreamResponse:
    i, daemon = _daemon(request)
    command = (await _form(request)).get("command", "")
    if command not in ("pause", "resume", "sync-now"):
        raise web.HTTPBadRequest(text="command must be pause, resume or sync-now")
    try:
        raise _back(f"/f/{i}", await actions.control(daemon, command))
    except ChunksyncError as exc:
        raise _back(f"/f/{i}", error=exc.message) from None


async def resolve(request: web.Request) -> web.StreamResponse:
    i, daemon = _daemon(request)
    form = await _form(request)
    try:
        message = await actions.resolve(daemon, form.get("path", ""), form.get("keep", ""))
    except (ChunksyncError, OSError) as exc:
        raise _back(f"/f/{i}", error=error_text(exc)) from None
    raise _back(f"/f/{i}", message)


async def undo_merge(request: web.Request) -> web.StreamResponse:
    i, daemon = _daemon(request)
    form = await _form(request)
    try:
        message = await actions.undo_merge(daemon, form.get("path", ""), form.get("side", ""))
    except (ChunksyncError, OSError) as exc:
        raise _back(f"/f/{i}", error=error_text(exc)) from None
    raise _back(f"/f/{i}", message)


async def restore(request: web.Request) -> web.StreamResponse:
    i, daemon = _daemon(request)
    form = await _form(request)
    back = {"path": form["return_path"]} if form.get("return_path") else {}
    try:
        message = await actions.restore(
            daemon, form.get("snapshot", ""), form.get("path", ""), form.get("to", "")
        )
    except (ChunksyncError, OSError) as exc:
        raise _back(f"/f/{i}/history", error=error_text(exc), **back) from None
    raise _back(f"/f/{i}/history", message, **back)


def _snapshot(daemons: list[FolderDaemon]) -> str:
    return json.dumps([status_of(d) for d in daemons], sort_keys=True, default=str)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``status`` with every folder's status, when it changes."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    daemons = request.app[DAEMONS]
    last, quiet = "", 0.0
    try:
        while True:
            doc = _snapshot(daemons)
            if doc != last:
                await response.write(f"event: status\ndata: {doc}\n\n".encode())
                last, quiet = doc, 0.0
            elif quiet >= KEEPALIVE:
                await response.write(b": keep-alive\n\n")
                quiet = 0.0
            await asyncio.sleep(EVENT_INTERVAL)
            quiet += EVENT_INTERVAL
    except ConnectionError:
        pass  # the page went away
    return response


async def api_folders(request: web.Request) -> web.Response:
    return web.json_response([status_of(d) for d in request.app[DAEMONS]])


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
