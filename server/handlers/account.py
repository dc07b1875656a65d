"""Account endpoints: login, logout, token rotation, whoami, TOTP enrol/disable.

Login answers every failure for an unknown user or a wrong password with the same
401 message and burns the same Argon2id time, so neither the text nor the timing tells
which one was wrong. Each failure counts against the user and the remote address
(429 past the limit, see :class:`server.auth.LoginLimiter`) and is audited.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pyotp
from aiohttp import web

from chunksync import wire

from .. import audit, auth
from .common import (
    CONFIG,
    DB,
    HUB,
    LIMITER,
    METRICS,
    ApiError,
    now,
    principal,
    read_json,
    record,
    remote,
)

__all__ = ["login", "logout", "rotate", "totp_disable", "totp_enroll", "whoami"]

BAD_LOGIN = "invalid user name or password"


async def login(request: web.Request) -> web.Response:
    doc = await read_json(
        request,
        {"user": str, "password": str, "totp": str, "device_name": str},
        required=("user", "password"),
        limit=64 * 1024,
    )
    name, password = doc["user"], doc["password"]
    device_name = doc.get("device_name", "device")
    if not wire.DEVICE_NAME.match(device_name):
        raise ApiError(400, "malformed device name")
    app, address = request.app, remote(request)
    keys = (f"user:{name}", f"addr:{address}")
    limiter = app[LIMITER]
    if limiter.blocked(*keys):
        app[METRICS].login_failures.inc()
        await record(request, "login.limited", user=name, detail={"reason": "rate limit"})
        raise ApiError(429, "too many failed logins; try again later")

    user = await app[DB].read(lambda c: auth.user_by_name(c, name))
    ok = await asyncio.to_thread(_check_password, user, password, app[CONFIG].argon2)
    reason = None if ok else "bad password"
    if ok and user is not None and user.totp_secret is not None:
        if "totp" not in doc:
            reason = "totp required"
        elif not auth.check_totp(user.totp_secret, doc["totp"]):
            reason = "bad totp"
    if reason is not None or user is None:
        limiter.fail(*keys)
        app[METRICS].login_failures.inc()
        await record(request, "login.failed", user=name, detail={"reason": reason})
        if reason == "totp required":
            raise ApiError(401, "TOTP code required", audited=True, totp_required=True)
        raise ApiError(401, BAD_LOGIN, audited=True)
    if user.disabled:
        await record(request, "login.failed", user=name, detail={"reason": "disabled"})
        raise ApiError(403, "account disabled", audited=True)

    ttl, t = app[CONFIG].token_ttl, now()

    def issue(conn: sqlite3.Connection) -> auth.Credentials:
        device_id = auth.add_device(conn, user.id, device_name, t)
        creds = auth.issue_token(conn, device_id, user.id, ttl=ttl, now=t)
        common = {"time": t, "user": name, "device": device_id, "address": address}
        audit.append(conn, action="login.ok", detail={"device_name": device_name}, **common)
        audit.append(conn, action="token.issue", detail={"expires": creds.expires_at}, **common)
        return creds

    creds = await app[DB].write(issue)
    return web.json_response(creds.to_wire())


def _check_password(user: auth.UserRow | None, password: str, params: Any) -> bool:
    if user is None:
        auth.dummy_verify(params)
        return False
    return auth.verify_password(password, user.pw_hash)


async def logout(request: web.Request) -> web.Response:
    who = principal(request)
    t, address = now(), remote(request)

    def revoke(conn: sqlite3.Connection) -> None:
        auth.revoke_token(conn, who.token_hash)
        audit.append(conn, action="token.revoke", time=t, user=who.user, device=who.device_id,
                     address=address, detail={"reason": "logout"})

    await request.app[DB].write(revoke)
    await request.app[HUB].close_tokens([who.token_hash])
    return web.Response(status=204)


async def rotate(request: web.Request) -> web.Response:
    who = principal(request)
    ttl, t, address = request.app[CONFIG].token_ttl, now(), remote(request)

    def swap(conn: sqlite3.Connection) -> auth.Credentials:
        auth.revoke_token(conn, who.token_hash)
        creds = auth.issue_token(conn, who.device_id, who.user_id, ttl=ttl, now=t)
        audit.append(conn, action="token.rotate", time=t, user=who.user, device=who.device_id,
                     address=address, detail={"expires": creds.expires_at})
        return creds

    creds = await request.app[DB].write(swap)
    await request.app[HUB].close_tokens([who.token_hash])
    return web.json_response(creds.to_wire())


async def whoami(request: web.Request) -> web.Response:
    who = principal(request)
    return web.json_response({
        "user": who.user,
        "admin": who.admin,
        "device_id": who.device_id,
        "device_name": who.device,
        "expires_at": who.expires_at,
        "totp": who.totp,
    })


async def totp_enroll(request: web.Request) -> web.Response:
    """Enable TOTP for the caller; answers the secret and its otpauth:// URI once."""
    who = principal(request)
    if who.totp:
        raise ApiError(409, "TOTP is already enabled; disable it first")
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=who.user, issuer_name="chunksync")
    t, address = now(), remote(request)

    def enrol(conn: sqlite3.Connection) -> None:
        auth.set_totp(conn, who.user_id, secret)
        audit.append(conn, action="totp.enable", time=t, user=who.user, device=who.device_id,
                     address=address)

    await request.app[DB].write(enrol)
    return web.json_response({"secret": secret, "uri": uri})


async def totp_disable(request: web.Request) -> web.Response:
    """Disable TOTP; requires a current code in ``{"totp": "123456"}``."""
    who = principal(request)
    doc = await read_json(request, {"totp": str}, required=("totp",), limit=4096)
    user = await request.app[DB].read(lambda c: auth.user_by_name(c, who.user))
    if user is None or user.totp_secret is None:
        raise ApiError(409, "TOTP is not enabled")
    if not auth.check_totp(user.totp_secret, doc["totp"]):
        raise ApiError(403, "wrong TOTP code")
    t, address = now(), remote(request)

    def disable(conn: sqlite3.Connection) -> None:
        auth.set_totp(conn, who.user_id, None)
        audit.append(conn, action="totp.disable", time=t, user=who.user, device=who.device_id,
                     address=address)

    await request.app[DB].write(disable)
    return web.Response(status=204)
