"""Account endpoints: login, logout, token rotation, whoami, TOTP enrol/disable.

Login answers every failure for an unknown user or a wrong password with the same
401 message and burns the same Argon2id time, so neither the text nor the timing tells
which one was wrong. Each attempt counts against the remote address and the user
before the password is checked (429 past the budget, see
:class:`chunksync_server.limits.LoginLimiter`); a correct one is refunded. Password work runs on
the bounded pool :data:`PASSWORDS` (503 when it is full). Failures are audited. A TOTP
code is claimed in the same transaction that issues the token, so it works once.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any

import pyotp
from aiohttp import web

from chunksync import wire

from .. import audit, auth
from ..devices import reuse_device
from ..passwords import PasswordBusy, PasswordGate, phc_lanes
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

__all__ = ["PASSWORDS", "login", "logout", "rotate", "totp_disable", "totp_enroll", "whoami"]

BAD_LOGIN = "invalid user name or password"
#: the app's password-hashing pool (:class:`chunksync_server.passwords.PasswordGate`)
PASSWORDS = web.AppKey("passwords", PasswordGate)
#: seconds a client is told to wait when the password pool is full (503)
RETRY_BUSY = 2


async def login(request: web.Request) -> web.Response:
    doc = await read_json(
        request,
        {"user": str, "password": str, "totp": str, "device_name": str, "device_id": str},
        required=("user", "password"),
        limit=64 * 1024,
    )
    name, password = doc["user"], doc["password"]
    device_name = doc.get("device_name", "device")
    if not wire.DEVICE_NAME.match(device_name):
        raise ApiError(400, "malformed device name")
    replaces = doc.get("device_id")  # a re-login of this device: replace its token
    if replaces is not None and not wire.DEVICE_ID.match(replaces):
        raise ApiError(400, "malformed device id")
    app, address = request.app, remote(request)
    limiter = app[LIMITER]
    keys = limiter.attempt(name, address)  # counted before any check: no await between
    if keys is None:
        app[METRICS].login_failures.inc()
        await record(request, "login.limited", user=name, detail={"reason": "rate limit"})
        raise ApiError(
            429, "too many failed logins; try again later", retry_after=limiter.retry_after(address)
        )

    user = await app[DB].read(lambda c: auth.user_by_name(c, name))
    try:
        ok = await _check_password(app, user, password)
    except ApiError:
        limiter.refund(keys)  # 503: nothing was checked, so nothing is counted
        raise
    step, t = None, now()
    reason = None if ok else "bad password"
    if ok and user is not None and user.totp_secret is not None:
        step = auth.totp_step(user.totp_secret, doc.get("totp"), t)
        if "totp" not in doc:
            reason = "totp required"
        elif step is None:
            reason = "bad totp"
    creds = None
    if reason is None and user is not None and not user.disabled:
        creds = await app[DB].write(
            lambda c: _issue(
                c,
                user,
                step,
                device_name=device_name,
                replaces=replaces,
                address=address,
                t=t,
                ttl=app[CONFIG].token_ttl,
            )
        )
        if creds is None:
            reason = "totp code already used"
    if reason is not None or user is None:
        app[METRICS].login_failures.inc()
        await record(request, "login.failed", user=name, detail={"reason": reason})
        if reason == "totp required":
            raise ApiError(401, "TOTP code required", audited=True, totp_required=True)
        raise ApiError(401, BAD_LOGIN, audited=True)
    limiter.refund(keys)  # the right password costs no budget
    if creds is None:  # disabled account
        await record(request, "login.failed", user=name, detail={"reason": "disabled"})
        raise ApiError(403, "account disabled", audited=True)
    await _upgrade_hash(app, user, password)
    return web.json_response(creds.to_wire())


async def _upgrade_hash(app: web.Application, user: auth.UserRow, password: str) -> None:
    """Rehash a multi-lane (older default) hash with the configured one-lane cost, so
    the slow, serialized verification path fades out; best effort, once per user."""
    if phc_lanes(user.pw_hash) <= 1:
        return
    params = app[CONFIG].argon2
    try:
        new = await app[PASSWORDS].run(
            lambda: auth.hash_password(password, params), lanes=params.lanes
        )
    except PasswordBusy:
        return
    await app[DB].write(lambda c: auth.replace_password_hash(c, user.id, user.pw_hash, new))


def _issue(
    conn: sqlite3.Connection,
    user: auth.UserRow,
    step: int | None,
    *,
    device_name: str,
    replaces: str | None,
    address: str,
    t: float,
    ttl: float,
) -> auth.Credentials | None:
    """Claim the TOTP step, add the device (or take over ``replaces``, one of the user's
    live devices, revoking its old tokens) and its token; None if the code was used."""
    if step is not None and not auth.claim_totp_step(conn, user.id, step):
        return None
    if replaces is not None and reuse_device(conn, user.id, replaces, device_name, t):
        device_id = replaces
    else:
        device_id = auth.add_device(conn, user.id, device_name, t)
    creds = auth.issue_token(conn, device_id, user.id, ttl=ttl, now=t)
    for action, detail in (
        ("login.ok", {"device_name": device_name}),
        ("token.issue", {"expires": creds.expires_at}),
    ):
        audit.append(
            conn,
            action=action,
            detail=detail,
            time=t,
            user=user.name,
            device=device_id,
            address=address,
        )
    return creds


def _dummy_check(params: Any) -> bool:
    """As long as a real check, for a user who does not exist (no timing oracle)."""
    auth.dummy_verify(params)
    return False


async def _check_password(app: web.Application, user: auth.UserRow | None, password: str) -> bool:
    """Argon2id on the password pool (never the DB's threads); 503 when it is full."""
    params = app[CONFIG].argon2
    job: Callable[[], bool]
    if user is None:
        job, lanes = functools.partial(_dummy_check, params), params.lanes
    else:
        encoded = user.pw_hash
        job, lanes = (lambda: auth.verify_password(password, encoded)), phc_lanes(encoded)
    try:
        return bool(await app[PASSWORDS].run(job, lanes=lanes))
    except PasswordBusy as exc:
        raise ApiError(503, str(exc), retry_after=RETRY_BUSY) from None


async def logout(request: web.Request) -> web.Response:
    who = principal(request)
    t, address = now(), remote(request)

    def revoke(conn: sqlite3.Connection) -> None:
        auth.revoke_token(conn, who.token_hash)
        audit.append(
            conn,
            action="token.revoke",
            time=t,
            user=who.user,
            device=who.device_id,
            address=address,
            detail={"reason": "logout"},
        )

    await request.app[DB].write(revoke)
    await request.app[HUB].close_tokens([who.token_hash])
    return web.Response(status=204)


async def rotate(request: web.Request) -> web.Response:
    who = principal(request)
    if who.scope != auth.SCOPE_DEVICE:  # a maintenance token dies young, never renewed
        raise ApiError(403, "a maintenance token cannot be rotated")
    ttl, t, address = request.app[CONFIG].token_ttl, now(), remote(request)

    def swap(conn: sqlite3.Connection) -> auth.Credentials:
        creds = auth.rotate_token(conn, who, ttl=ttl, now=t)
        audit.append(
            conn,
            action="token.rotate",
            time=t,
            user=who.user,
            device=who.device_id,
            address=address,
            detail={"expires": creds.expires_at},
        )
        return creds

    # the calling token stays valid until the new one is first used (auth.confirm_rotation):
    # if this answer is lost, the device keeps working and simply rotates again
    creds = await request.app[DB].write(swap)
    return web.json_response(creds.to_wire())


async def whoami(request: web.Request) -> web.Response:
    who = principal(request)
    return web.json_response(
        {
            "user": who.user,
            "admin": who.admin,
            "device_id": who.device_id,
            "device_name": who.device,
            "expires_at": who.expires_at,
            "totp": who.totp,
        }
    )


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
        audit.append(
            conn, action="totp.enable", time=t, user=who.user, device=who.device_id, address=address
        )

    await request.app[DB].write(enrol)
    return web.json_response({"secret": secret, "uri": uri})


async def totp_disable(request: web.Request) -> web.Response:
    """Disable TOTP; requires a current code in ``{"totp": "123456"}``."""
    who = principal(request)
    doc = await read_json(request, {"totp": str}, required=("totp",), limit=4096)
    user = await request.app[DB].read(lambda c: auth.user_by_name(c, who.user))
    if user is None or user.totp_secret is None:
        raise ApiError(409, "TOTP is not enabled")
    t, address = now(), remote(request)
    step = auth.totp_step(user.totp_secret, doc["totp"], t)
    if step is None:
        raise ApiError(403, "wrong TOTP code")

    def disable(conn: sqlite3.Connection) -> bool:
        if not auth.claim_totp_step(conn, who.user_id, step):
            return False
        auth.set_totp(conn, who.user_id, None)
        audit.append(
            conn,
            action="totp.disable",
            time=t,
            user=who.user,
            device=who.device_id,
            address=address,
        )
        return True

    if not await request.app[DB].write(disable):
        raise ApiError(403, "TOTP code already used; wait for the next one")
    return web.Response(status=204)
