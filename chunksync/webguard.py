"""What protects the local dashboard and the server's admin page (aiohttp middleware).

Both pages hold powers (resolve a conflict, restore, revoke a device), so a browser must
not be tricked into using them:

* **Sessions**: a random id in an ``HttpOnly``, ``SameSite=Strict`` cookie, kept in
  memory (a restart logs everyone out), ending after ``lifetime`` seconds. No session,
  no page: 401 for every page and API; only the login routes (and the package's static
  files) are open.
* **CSRF**: every state-changing request (anything but GET/HEAD) must come from the page
  itself — ``Sec-Fetch-Site`` (when the browser sends it) is ``same-origin``, ``Origin``
  (when sent) is our own, and the session's CSRF token is in the ``X-CSRF-Token`` header
  or the ``csrf`` form field; else 403. A request with the bearer token and no cookie
  (a script, Prometheus) carries no ambient credential and skips the CSRF token check.
* **Host check**: only the names in ``hosts`` are served (DNS rebinding: a foreign name
  that resolves to 127.0.0.1 gets 421).
* **Headers** (:func:`security_headers`): a strict Content-Security-Policy (own scripts
  and styles only, no inline code, no frames, forms post only to us), no
  sniffing, no caching; referrers only to ourselves (with "no-referrer" a browser sends
  ``Origin: null`` on a plain form post, which the CSRF check refuses).

The module holds no key and touches no file: the server's admin page uses it too.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["CSP", "Guard", "Session", "security_headers", "session_of"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION = web.RequestKey("session", object)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass
class Session:
    sid: str
    csrf: str
    expires: float
    user: str = ""
    admin: bool = False


@dataclass
class Guard:
    """Sessions and the middleware that enforces them (see the module docstring)."""

    cookie: str
    open_paths: frozenset[str]
    bearer: str | None = None  # a token that authorizes scripts (no cookie, no CSRF)
    hosts: Collection[str] = ()  # allowed Host headers; empty: any
    lifetime: float = 12 * 3600.0
    static_prefix: str = "/static/"
    sessions: dict[str, Session] = field(default_factory=dict)

    def start(self, user: str = "", admin: bool = False) -> Session:
        now = time.time()
        for sid in [s for s, v in self.sessions.items() if v.expires < now]:
            del self.sessions[sid]
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + self.lifetime, user, admin
        )
        self.sessions[session.sid] = session
        return session

    def end(self, request: web.Request) -> None:
        self.sessions.pop(request.cookies.get(self.cookie, ""), None)

    def set_cookie(self, response: web.StreamResponse, session: Session, secure: bool) -> None:
        response.set_cookie(
            self.cookie,
            session.sid,
            httponly=True,
            samesite="Strict",
            secure=secure,
            path="/",
            max_age=int(self.lifetime),
        )

    def session_of(self, request: web.Request) -> Session | None:
        session = self.sessions.get(request.cookies.get(self.cookie, ""))
        if session is None or session.expires < time.time():
            return None
        return session

    def _bearer_ok(self, request: web.Request) -> bool:
        if self.bearer is None:
            return False
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.bearer.encode()
        )

    def is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.static_prefix)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.hosts and request.host not in self.hosts:
            raise web.HTTPMisdirectedRequest(text="unknown host name")
        if request.method not in SAFE_METHODS and not _same_site(request):
            raise web.HTTPForbidden(text="cross-site request refused")
        if self.is_open(request.path):
            return await handler(request)
        if self._bearer_ok(request) and self.cookie not in request.cookies:
            return await handler(request)
        session = self.session_of(request)
        if session is None:
            raise web.HTTPUnauthorized(text="not logged in: open a new login link")
        if request.method not in SAFE_METHODS and not await _csrf_ok(request, session):
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")
        request[SESSION] = session
        return await handler(request)


def _same_site(request: web.Request) -> bool:
    """A browser's own word on where the request came from (absent for scripts)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


async def _csrf_ok(request: web.Request, session: Session) -> bool:
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sent = str((await request.post()).get("csrf", ""))
    return sent is not None and hmac.compare_digest(sent.encode(), session.csrf.encode())


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The strict headers of every answer, errors and event streams included (an
    ``on_response_prepare`` signal: it runs before any byte is sent)."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")


def session_of(request: web.Request) -> Session | None:
    """The session the guard attached to ``request`` (None for bearer or open routes)."""
    found = request.get(SESSION)
    return found if isinstance(found, Session) else None
