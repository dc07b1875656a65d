"""A TOTP code works once (RFC 6238 §5.2): the same code is refused the second time,
also when both uses arrive at once, and for disabling TOTP — real server on loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pyotp

from chunksync import wire
from tests.helpers.server import RunningServer, serve_in_process


async def enrol(s: aiohttp.ClientSession, srv: RunningServer) -> pyotp.TOTP:
    async with s.post(srv.url(wire.TOTP_ENROLL), headers=srv.headers()) as r:
        assert r.status == 200
        return pyotp.TOTP((await r.json())["secret"])


async def login_status(s: aiohttp.ClientSession, srv: RunningServer, code: str) -> int:
    body = {"user": srv.user, "password": srv.password, "totp": code}
    async with s.post(srv.url(wire.LOGIN), json=body) as r:
        await r.read()
        return r.status


async def test_a_totp_code_is_accepted_once(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv", login_max_failures=50) as srv:
        async with aiohttp.ClientSession() as s:
            totp = await enrol(s, srv)
            code = totp.now()
            assert await login_status(s, srv, code) == 200
            assert await login_status(s, srv, code) == 401  # replayed
            previous = totp.at(time.time() - totp.interval)  # an older step: also spent
            assert await login_status(s, srv, previous) == 401
            later = totp.at(time.time() + totp.interval)  # next step, within skew
            assert await login_status(s, srv, later) == 200


async def test_the_same_code_sent_twice_at_once_logs_in_once(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv", login_max_failures=50) as srv:
        async with aiohttp.ClientSession() as s:
            totp = await enrol(s, srv)
            code = totp.now()
            statuses = await asyncio.gather(*(login_status(s, srv, code) for _ in range(6)))
    assert sorted(statuses) == [200] + [401] * 5


async def test_a_used_code_cannot_disable_totp(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv", login_max_failures=50) as srv:
        async with aiohttp.ClientSession() as s:
            totp = await enrol(s, srv)
            code = totp.now()
            assert await login_status(s, srv, code) == 200
            async with s.delete(
                srv.url(wire.TOTP_ENROLL), json={"totp": code}, headers=srv.headers()
            ) as r:
                assert r.status == 403
            fresh = totp.at(time.time() + totp.interval)
            async with s.delete(
                srv.url(wire.TOTP_ENROLL), json={"totp": fresh}, headers=srv.headers()
            ) as r:
                assert r.status == 204
