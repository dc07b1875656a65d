"""``POST /v1/reauth``: the owner proves again who they are, for a short-lived token.

Deleting history (forget, prune, purge) is refused to the long-lived device tokens a
laptop keeps on disk, so a stolen laptop cannot destroy what the server keeps. The
owner types the password (and a TOTP code when enrolled) and gets a *maintenance*
token for the same device that expires after ``MAINTENANCE_TTL`` seconds. The attempt
counts against the same login budget as a login (429 past it), the password check
runs on the same bounded pool (503 when full), the TOTP code is claimed once, and
every outcome is audited.
"""

from __future__ import annotations

import sqlite3

from aiohttp import web

from .. import audit, auth
from .account import _check_password
from .common import DB, LIMITER, METRICS, ApiError, now, principal, read_json, record, remote

__all__ = ["MAINTENANCE_TTL", "reauth"]

MAINTENANCE_TTL = 600.0  # seconds: long enough for one forget + prune of a big folder


async def reauth(request: web.Request) -> web.Response:
    doc = await read_json(
        request, {"password": str, "totp": str}, required=("password",), limit=64 * 1024
    )
    who, app, address = principal(request), request.app, remote(request)
    keys = app[LIMITER].attempt(who.user, address)
    if keys is None:
        await record(request, "reauth.limited", detail={"reason": "rate limit"})
        raise ApiError(
            429,
            "too many failed attempts; try again later",
            retry_after=app[LIMITER].retry_after(address),
        )
    user = await app[DB].read(lambda c: auth.user_by_name(c, who.user))
    try:
        ok = await _check_password(app, user, doc["password"])
    except ApiError:
        app[LIMITER].refund(keys)
        raise
    t = now()
    step = None
    reason = None if ok and user is not None else "bad password"
    if reason is None and user is not None and user.totp_secret is not None:
        step = auth.totp_step(user.totp_secret, doc.get("totp"), t)
        reason = "totp required" if "totp" not in doc else "bad totp" if step is None else None
    if reason is None and user is not None:

        def issue(conn: sqlite3.Connection) -> auth.Credentials | None:
            if step is not None and not auth.claim_totp_step(conn, user.id, step):
                return None
            creds = auth.issue_token(
                conn,
                who.device_id,
                user.id,
                ttl=MAINTENANCE_TTL,
                now=t,
                scope=auth.SCOPE_MAINTENANCE,
            )
            audit.append(
                conn,
                action="reauth.ok",
                time=t,
                user=who.user,
                device=who.device_id,
                address=address,
                detail={"expires": creds.expires_at, "scope": auth.SCOPE_MAINTENANCE},
            )
            return creds

        creds = await app[DB].write(issue)
        if creds is not None:
            app[LIMITER].refund(keys)
            return web.json_response(creds.to_wire())
        reason = "totp code already used"
    app[METRICS].login_failures.inc()
    await record(request, "reauth.failed", detail={"reason": reason})
    # 403, not 401: the device token itself is fine, and a client must not drop it
    if reason == "totp required":
        raise ApiError(403, "TOTP code required", audited=True, totp_required=True)
    raise ApiError(403, "wrong password or TOTP code", audited=True)
