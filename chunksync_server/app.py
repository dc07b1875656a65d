"""The chunk server's aiohttp application: ``make_app(config) -> web.Application``.

The app owns its metadata database (:class:`chunksync_server.db.MetaDB`), its object store
(``chunksync_server.storage.open_store(config.store_location)`` unless one is injected), the
WebSocket hub, the login limiter and a private metrics registry, all reachable through
typed ``web.AppKey``\\ s (see :mod:`chunksync_server.handlers.common`), and closes them on
cleanup.

Request pipeline (outermost first):

0. ``access_log`` — one structured line per request and one per unexpected error
   (:mod:`chunksync_server.accesslog`).
1. ``observe`` — counts every request by route template, method and status, and turns
   :class:`~chunksync_server.handlers.common.ApiError` and aiohttp's own HTTP errors into a JSON
   ``{"error": "one line"}`` body; a 401/403 writes an audit row, at most one per
   caller (device, token-hash prefix or address), route and status per
   ``denied_audit_window`` — the row after a quiet spell counts those held back.
2. ``authenticate`` — **deny by default**: only ``/healthz``, ``/metrics`` (when
   ``metrics_public``) and ``/v1/login`` are open. Anything else needs
   ``Authorization: Bearer <token>`` naming a valid, unexpired, unrevoked device token
   (checked against SQLite on every request, so revocations apply at once). The first
   request with a rotated token revokes the token it replaced (``auth.confirm_rotation``).

Every damaged object the store quarantines is counted and changes the storage epoch
(:func:`_damage_hook`), so clients re-upload it without an operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from chunksync import wire

from . import audit, auth, tracing
from .accesslog import access_log
from .admin_web.app import add_admin_web, is_admin_path
from .config import ServerConfig, ensure_data_dir
from .db import MetaDB
from .epoch import shared_epoch, start_token
from .events import EventHub
from .fanout import listen_heads
from .handlers import add_routes
from .handlers.account import PASSWORDS
from .handlers.common import (
    CONFIG,
    DB,
    EPOCH,
    HUB,
    LIMITER,
    METRICS,
    PRINCIPAL,
    QUOTAS,
    SHARED_EPOCH,
    STORE,
    ApiError,
    change_epoch,
    now,
    record,
    remote,
    storage_refusal,
)
from .handlers.lifecycle import PRUNING
from .lifecycle import Pruning
from .limits import Budget, DenialThrottle, LoginLimiter
from .metrics import CONTENT_TYPE, Metrics
from .passwords import PasswordGate
from .pgdb import is_pg_url
from .quota import QuotaTracker
from .storage.base import Damage, StorageError, storage_error

__all__ = ["make_app"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_ROUTES = frozenset({wire.HEALTHZ, wire.LOGIN})
TOUCH_INTERVAL = 60.0
TOUCHED = web.AppKey("touched", dict[str, float])
DENIALS = web.AppKey("denials", DenialThrottle)


def make_app(config: ServerConfig, *, store: Any | None = None) -> web.Application:
    """Build the application; ``store`` overrides the configured object store."""
    app = web.Application(
        middlewares=[access_log, tracing.middleware, _observe, _authenticate],
        client_max_size=config.max_json_bytes,
    )
    app[CONFIG] = config
    app[HUB] = EventHub()
    app[METRICS] = Metrics()
    app[TOUCHED] = {}
    app[LIMITER] = LoginLimiter(
        Budget(config.login_max_failures, config.login_window),
        Budget(config.login_user_max_failures, config.login_user_window),
    )
    app[DENIALS] = DenialThrottle(config.denied_audit_window)
    app[QUOTAS] = QuotaTracker()
    app[EPOCH] = start_token()
    app[PRUNING] = Pruning()
    app.cleanup_ctx.append(_resources(store))
    app.on_shutdown.append(_close_sockets)
    app.router.add_get(wire.HEALTHZ, _healthz)
    app.router.add_get(wire.METRICS, _metrics)
    add_routes(app)
    add_admin_web(app)  # /admin: the admin page, behind its own guard (admin_web/)
    return app


def _resources(store: Any | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        ensure_data_dir(config.data_dir)
        app[PASSWORDS] = PasswordGate(
            config.password_workers, config.password_queue, config.password_timeout
        )
        app[DB] = await asyncio.to_thread(MetaDB, config.db_location)
        hook = _damage_hook(app)
        if store is None:
            from .storage.routing import open_configured_store

            app[STORE] = await asyncio.to_thread(open_configured_store, config, hook)
        else:
            app[STORE] = store
            if getattr(store, "on_damage", False) is None:
                store.on_damage = hook
        app[SHARED_EPOCH] = bool(getattr(app[STORE], "shared", False))
        if app[SHARED_EPOCH]:
            await app[DB].write(shared_epoch)
        tasks = [asyncio.create_task(_watch_revocations(app))]
        if is_pg_url(config.db_location):  # several servers: fan head events out
            tasks.append(asyncio.create_task(listen_heads(str(config.db_location), app[HUB])))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if store is None:
                await asyncio.to_thread(app[STORE].close)  # type: ignore[attr-defined]
            await asyncio.to_thread(app[DB].close)
            app[PASSWORDS].close()

    return ctx


def _damage_hook(app: web.Application) -> Callable[[Damage], None]:
    """What the server does with each damaged object its store quarantines.

    Count it (``chunksync_storage_damaged_objects_total``; the store logs it once), and
    change the storage epoch (chunksync_server/epoch.py): clients that cached "the server has
    this" check the head's objects again on their next sync and re-upload what they
    hold, so the folder heals without an operator. Called from store worker threads.
    """
    metrics = app[METRICS]

    def on_damage(damage: Damage) -> None:
        metrics.damaged_objects.inc()
        try:
            change_epoch(app)
        except (
            OSError,
            sqlite3.Error,
        ) as exc:  # the object stays quarantined; clients heal at the next start
            log.error("could not record that %s was lost: %s", damage.name, exc)

    return on_damage


async def _watch_revocations(app: web.Application) -> None:
    db = app[DB]

    async def data_version() -> int:
        return await db.read(lambda c: c.execute("PRAGMA data_version").fetchone()[0])

    async def invalid(hashes: list[bytes]) -> set[bytes]:
        t = now()
        return await db.read(lambda c: auth.invalid_tokens(c, hashes, t))

    await app[HUB].watch_revocations(data_version, invalid, app[CONFIG].revocation_poll)


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all()


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    try:
        response = await handler(request)
    except ApiError as err:
        response = err.response()
        if "retry_after" in err.extra:
            response.headers["Retry-After"] = str(err.extra["retry_after"])
        if err.status in (401, 403):
            metrics.denied.inc()
            if not err.audited:
                await _audit_denied(request, err.status, err.message)
    except (StorageError, sqlite3.Error) as exc:  # a full or failing disk is an answer
        failed = storage_error(exc, "metadata database failed")
        response = storage_refusal(failed, write=request.method != "GET").response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = web.json_response(wire.error_body(exc.reason or "error"), status=exc.status)
        if exc.status == 413:
            response.force_close()
    if response.status == 413:
        response.force_close()  # do not drain an oversized body
    metrics.observe(_route_name(request), request.method, response.status)
    return response


def _denied_caller(request: web.Request) -> str:
    """Who was refused: the device, else a prefix of the token's hash, else the address."""
    who = request.get(PRINCIPAL)
    if who is not None:
        return f"device:{who.device_id}"
    _, _, token = request.headers.get(wire.AUTHORIZATION, "").partition(" ")
    if token.strip():
        return f"token:{auth.hash_token(token.strip())[:8].hex()}"
    return f"addr:{request.remote}"


async def _audit_denied(request: web.Request, status: int, reason: str) -> None:
    """Audit a 401/403, at most once per caller, route and status per window."""
    key = (_denied_caller(request), status, request.method, _route_name(request))
    suppressed = request.app[DENIALS].admit(key)
    if suppressed is None:
        return
    detail: dict[str, object] = {
        "status": status,
        "reason": reason,
        "method": request.method,
        "path": request.path[:200],
    }
    if suppressed:
        detail["suppressed"] = suppressed  # like denials held back since the last row
    try:
        await record(
            request, "request.denied", detail=detail, folder=request.match_info.get("folder")
        )
    except Exception:  # the refusal stands even if auditing it fails
        log.exception("could not audit a denied request")


def _bearer(request: web.Request) -> str:
    header = request.headers.get(wire.AUTHORIZATION)
    if header is None:
        raise ApiError(401, "missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or len(token) > 256 or " " in token.strip():
        raise ApiError(401, "malformed Authorization header (expected Bearer token)")
    return token.strip()


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = _route_name(request)
    if route in OPEN_ROUTES or (route == wire.METRICS and request.app[CONFIG].metrics_public):
        return await handler(request)
    if is_admin_path(request.path):  # sessions, not device tokens: admin_web's guard
        return await handler(request)
    token = _bearer(request)
    db, t = request.app[DB], now()
    who = await db.read(lambda c: auth.lookup_token(c, token, t))
    if isinstance(who, str):
        raise ApiError(401, who)
    request[PRINCIPAL] = who
    if who.replaces is not None:
        await _confirm_rotation(request, who, t)
    await _touch(request, who, t)
    return await handler(request)


async def _confirm_rotation(request: web.Request, who: auth.Principal, t: float) -> None:
    """A rotated token's first use: the token it replaced is refused from now on."""
    predecessor = who.replaces
    assert predecessor is not None  # nosec B101  # invariant for the type checker

    def confirm(conn: sqlite3.Connection) -> bool:
        done = auth.confirm_rotation(conn, who.token_hash, predecessor)
        if done:
            audit.append(
                conn,
                action="token.revoke",
                time=t,
                user=who.user,
                device=who.device_id,
                address=remote(request),
                detail={"reason": "rotated"},
            )
        return done

    if await request.app[DB].write(confirm):
        await request.app[HUB].close_tokens([predecessor])


async def _touch(request: web.Request, who: auth.Principal, t: float) -> None:
    """Record the device's last-seen time, at most once a minute per device."""
    touched = request.app[TOUCHED]
    if t - touched.get(who.device_id, 0.0) < TOUCH_INTERVAL:
        return
    touched[who.device_id] = t
    await request.app[DB].write(lambda c: auth.touch_device(c, who.device_id, t))


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "time": time.time()})


async def _metrics(request: web.Request) -> web.Response:
    who = request.get(PRINCIPAL)
    if not request.app[CONFIG].metrics_public and (who is None or not who.admin):
        raise ApiError(403, "metrics are for admins only")
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
