"""The server's admin page, ``/admin/`` on the server's own port (admins only).

An admin logs in with the account's password (and TOTP code when the account has one),
under the same login rate limit as ``/v1/login``; a user who is not an admin is refused.
The session and every protection are :mod:`chunksync.webguard`'s: cookie session
(``Secure`` under TLS), CSRF token and same-origin check on every POST, strict CSP, no
external resource (the page is plain HTML forms and one style sheet from the package).

Pages: ``/admin/`` health and totals; ``/admin/users`` (admin, disabled, TOTP, quota);
``/admin/devices`` (last seen; revoke); ``/admin/folders`` (owner, members and roles,
objects and bytes stored, quota); ``/admin/audit`` (the chain's verification status and
the newest rows). Hooked into the server app by :func:`add_admin_web` (one line in
``chunksync_server/app.py``); the app's token middleware lets ``/admin`` through to this
module's guard, which answers every other ``/admin`` request without a session 401.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from chunksync.webguard import Guard, Session, security_headers, session_of

from .. import auth
from ..handlers.account import _check_password
from ..handlers.common import DB, LIMITER, METRICS, ApiError, now, record, remote
from . import views

__all__ = ["PREFIX", "add_admin_web"]

PREFIX = "/admin"
HERE = Path(__file__).parent
GUARD = web.AppKey("admin_guard", Guard)
COOKIE = "chunksync_admin"
JINJA = web.AppKey("admin_jinja", jinja2.Environment)


def add_admin_web(app: web.Application) -> None:
    """Add the admin routes under :data:`PREFIX` to the server ``app`` (not a sub-app: the
    handlers share the app's database, limiter and metrics keys)."""
    guard = Guard(COOKIE, frozenset({f"{PREFIX}/login"}), static_prefix=f"{PREFIX}/static/")
    app[GUARD] = guard
    app.middlewares.append(_admin_only(guard))
    app.on_response_prepare.append(_headers)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        filters={"when": _when, "size": _size},
        app_key=JINJA,
    )
    r = app.router
    r.add_get(f"{PREFIX}/login", login_form)
    r.add_post(f"{PREFIX}/login", login)
    r.add_post(f"{PREFIX}/logout", logout)
    for name, path in PAGES.items():
        r.add_get(f"{PREFIX}{path}", page(name))
    r.add_post(f"{PREFIX}/devices/revoke", revoke)
    r.add_static(f"{PREFIX}/static/", HERE / "static", append_version=False)


PAGES = {
    "health": "/",
    "users": "/users",
    "devices": "/devices",
    "folders": "/folders",
    "audit": "/audit",
}


def is_admin_path(path: str) -> bool:
    return path == PREFIX or path.startswith(f"{PREFIX}/")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    if is_admin_path(request.path):
        await security_headers(request, response)


def _admin_only(guard: Guard) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        """The guard, for /admin paths only; refusals as short pages (the server's JSON
        error body is for the API)."""
        if not is_admin_path(request.path):
            response: web.StreamResponse = await handler(request)
            return response
        try:
            return await guard.middleware(request, handler)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            hint = f' <a href="{PREFIX}/login">Log in</a>' if exc.status == 401 else ""
            body = (
                f"<!doctype html><title>{exc.status}</title><p>{exc.text or exc.reason}.{hint}</p>"
            )
            return web.Response(status=exc.status, text=body, content_type="text/html")

    return middleware


def _when(ts: float | None) -> str:
    if not ts:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n: int | None) -> str:
    if n is None:
        return "no limit"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _admin(request: web.Request) -> Session:
    session = session_of(request)
    if session is None or not session.admin:
        raise web.HTTPForbidden(text="admins only")
    return session


def page(name: str) -> Any:
    @aiohttp_jinja2.template(f"{name}.html", app_key=JINJA)
    async def show(request: web.Request) -> dict[str, Any]:
        session = _admin(request)
        root = request.app
        ctx: dict[str, Any] = {
            "page": name,
            "prefix": PREFIX,
            "csrf": session.csrf,
            "admin": session.user,
            "message": request.query.get("msg", "")[:300],
            "error": request.query.get("error", "")[:300],
        }
        match name:
            case "health":
                ctx["health"] = await views.health(root)
            case "users":
                ctx["users"] = await views.users(root)
            case "devices":
                ctx["devices"] = await views.devices(root)
            case "folders":
                ctx["folders"] = await views.folders(root)
            case "audit":
                ctx["verified"], ctx["entries"] = await views.audit_view(root)
        return ctx

    return show


@aiohttp_jinja2.template("login.html", app_key=JINJA)
async def login_form(request: web.Request) -> dict[str, Any]:
    return {"page": "login", "prefix": PREFIX, "error": request.query.get("error", "")[:200]}


def _again(error: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{PREFIX}/login?error={error.replace(' ', '+')}")


async def login(request: web.Request) -> web.StreamResponse:
    """Password (+ TOTP) of an admin account: the same checks and limits as /v1/login."""
    form = await request.post()
    name, password = str(form.get("user", ""))[:64], str(form.get("password", ""))[:1024]
    code = str(form.get("totp", "")).strip()
    if not name or not password:  # not a guess: spends no login budget
        raise _again("give the user name and the password")
    root = request.app
    limiter, address = root[LIMITER], remote(request)
    keys = limiter.attempt(name, address)
    if keys is None:
        root[METRICS].login_failures.inc()
        raise _again("too many failed logins; try again later")
    db = root[DB]
    user = await db.read(lambda c: auth.user_by_name(c, name))
    try:
        ok = await _check_password(root, user, password)
    except ApiError:
        limiter.refund(keys)
        raise _again("the server is busy; try again") from None
    if ok and user is not None and user.totp_secret is not None:
        step = auth.totp_step(user.totp_secret, code or None, now())
        uid = user.id
        ok = step is not None and await db.write(lambda c: auth.claim_totp_step(c, uid, step))
    if not ok or user is None or user.disabled:
        root[METRICS].login_failures.inc()
        await record(request, "admin.web.login.failed", user=name)
        raise _again("wrong user name, password or code")
    limiter.refund(keys)
    if not user.admin:
        await record(request, "admin.web.login.refused", user=name, detail={"reason": "not admin"})
        raise _again("this account is not an admin")
    guard = request.app[GUARD]
    await record(request, "admin.web.login", user=name)
    response = web.Response(status=303, headers={"Location": f"{PREFIX}/"})
    guard.set_cookie(response, guard.start(user.name, admin=True), secure=request.secure)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    request.app[GUARD].end(request)
    response = web.Response(status=303, headers={"Location": f"{PREFIX}/login"})
    response.del_cookie(COOKIE, path="/")
    return response


async def revoke(request: web.Request) -> web.StreamResponse:
    session = _admin(request)
    device_id = str((await request.post()).get("device", ""))[:100]
    owner = await views.revoke(request, device_id, session.user)
    if owner is None:
        raise web.HTTPSeeOther(f"{PREFIX}/devices?error=no+such+device")
    raise web.HTTPSeeOther(f"{PREFIX}/devices?msg=revoked+device+{device_id}+of+{owner}")
