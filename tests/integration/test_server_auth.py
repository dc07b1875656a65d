"""Deny-by-default matrix: every endpoint × bad credentials, foreign folders, read-only
writers and rewinding CAS → 401/403/409, each 401/403 audited; no secret at rest."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from chunksync import wire
from chunksync_server import admin
from tests.helpers.server import RunningServer, create_user, login, serve_in_process

F = "shared"
ALL_ENDPOINTS: list[tuple[str, str]] = [
    ("POST", wire.LOGOUT),
    ("POST", wire.TOKEN_ROTATE),
    ("GET", wire.WHOAMI),
    ("POST", wire.TOTP_ENROLL),
    ("DELETE", wire.TOTP_ENROLL),
    ("GET", wire.FOLDERS),
    ("POST", wire.FOLDERS),
    ("GET", wire.FOLDER),
    ("GET", wire.KEYSLOTS),
    ("PUT", wire.KEYSLOT),
    ("POST", wire.MISSING),
    ("POST", wire.OBJECTS_FETCH),
    ("POST", wire.OBJECTS),
    ("PUT", wire.OBJECT),
    ("GET", wire.OBJECT),
    ("GET", wire.HEAD),
    ("PUT", wire.HEAD),
    ("GET", wire.HEAD_LOG),
    ("GET", wire.EVENTS),
]
FOLDER_ENDPOINTS = [(m, r) for m, r in ALL_ENDPOINTS if "{folder}" in r]
WRITES = [("PUT", wire.KEYSLOT), ("POST", wire.OBJECTS), ("PUT", wire.OBJECT), ("PUT", wire.HEAD)]


class World:
    def __init__(self, srv: RunningServer, blob: bytes, oid: str, tokens: dict[str, str]) -> None:
        self.srv, self.blob, self.oid, self.tokens = srv, blob, oid, tokens

    def request_args(self, method: str, route: str) -> dict[str, Any]:
        url = self.srv.url(route, folder=F, slot="s1", oid=self.oid)
        kw: dict[str, Any] = {"method": method, "url": url}
        if route in (wire.MISSING, wire.OBJECTS_FETCH):
            kw["json"] = {"ids": [self.oid]}
        elif route == wire.OBJECTS:
            kw["data"] = wire.encode_upload_frames([(bytes.fromhex(self.oid), self.blob)])
            kw["headers"] = {"Content-Type": wire.BATCH_TYPE}
        elif route == wire.OBJECT and method == "PUT":
            kw["data"] = self.blob
            kw["headers"] = {wire.DIGEST_HEADER: wire.blob_digest(self.blob).hex()}
        elif route == wire.HEAD and method == "PUT":
            kw["json"] = {"expected": self.oid, "new": self.oid}
        elif route == wire.KEYSLOT:
            kw["json"] = {"blob": "AAAA"}
        elif route == wire.FOLDERS and method == "POST":
            kw["json"] = {"name": "another"}
        elif method == "DELETE":
            kw["json"] = {"totp": "000000"}
        return kw


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    data = tmp_path / "srv"
    async with serve_in_process(data) as srv:
        create_user(data, "bob")
        create_user(data, "carol")
        blob = os.urandom(64)
        oid = wire.blob_digest(blob).hex()
        async with aiohttp.ClientSession() as s:
            bob = (await login(s, srv.base_url, "bob"))["token"]
            carol = (await login(s, srv.base_url, "carol"))["token"]
            revoked = await login(s, srv.base_url, srv.user, device_name="stolen laptop")
            h = srv.headers()
            async with s.post(srv.url(wire.FOLDERS), json={"name": F}, headers=h) as r:
                assert r.status == 201
            async with s.put(
                srv.url(wire.OBJECT, folder=F, oid=oid),
                data=blob,
                headers={**h, wire.DIGEST_HEADER: wire.blob_digest(blob).hex()},
            ) as r:
                assert r.status == 201
            async with s.put(
                srv.url(wire.HEAD, folder=F), json={"expected": None, "new": oid}, headers=h
            ) as r:
                assert r.status == 200
        admin.add_member(data, F, "carol", "read-only")
        admin.revoke_device(data, revoked["device_id"])
        yield World(srv, blob, oid, {"bob": bob, "carol": carol, "revoked": revoked["token"]})


def denied_count(data: Path) -> int:
    return sum(1 for e in admin.read_audit(data) if e.action == "request.denied")


async def status_of(
    s: aiohttp.ClientSession, w: World, method: str, route: str, auth: str | None
) -> tuple[int, dict[str, Any]]:
    kw = w.request_args(method, route)
    headers = dict(kw.pop("headers", {}))
    if auth is not None:
        headers["Authorization"] = auth
    async with s.request(headers=headers, **kw) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else {})


@pytest.mark.parametrize("case", ["none", "malformed", "wrong", "revoked"])
async def test_bad_credentials_are_401_and_audited(world: World, case: str) -> None:
    auth = {
        "none": None,
        "malformed": "Token abc",
        "wrong": "Bearer " + "x" * 43,
        "revoked": "Bearer " + world.tokens["revoked"],
    }[case]
    before = denied_count(world.srv.data_dir)
    async with aiohttp.ClientSession() as s:
        for method, route in ALL_ENDPOINTS:
            status, body = await status_of(s, world, method, route, auth)
            assert status == 401, (method, route, status, body)
            assert set(body) == {"error"} and "\n" not in body["error"]
    assert denied_count(world.srv.data_dir) - before == len(ALL_ENDPOINTS)


async def test_other_users_folder_is_403_and_audited(world: World) -> None:
    before = denied_count(world.srv.data_dir)
    async with aiohttp.ClientSession() as s:
        for method, route in FOLDER_ENDPOINTS:
            status, body = await status_of(s, world, method, route, "Bearer " + world.tokens["bob"])
            assert status == 403, (method, route, status, body)
    assert denied_count(world.srv.data_dir) - before == len(FOLDER_ENDPOINTS)


async def test_read_only_member_cannot_write(world: World) -> None:
    carol = "Bearer " + world.tokens["carol"]
    before = denied_count(world.srv.data_dir)
    async with aiohttp.ClientSession() as s:
        for method, route in WRITES:
            status, _ = await status_of(s, world, method, route, carol)
            assert status == 403, (method, route)
        for method, route in [
            ("GET", wire.HEAD),
            ("GET", wire.OBJECT),
            ("GET", wire.KEYSLOTS),
            ("POST", wire.MISSING),
            ("GET", wire.HEAD_LOG),
        ]:
            status, _ = await status_of(s, world, method, route, carol)
            assert status == 200, (method, route)
    assert denied_count(world.srv.data_dir) - before == len(WRITES)


async def test_rewinding_cas_is_409_with_current_head(world: World) -> None:
    srv, other = world.srv, os.urandom(40)
    other_id = wire.blob_digest(other).hex()
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        async with s.put(
            srv.url(wire.OBJECT, folder=F, oid=other_id),
            data=other,
            headers={wire.DIGEST_HEADER: other_id},
        ) as r:
            assert r.status == 201
        async with s.put(
            srv.url(wire.HEAD, folder=F), json={"expected": world.oid, "new": other_id}
        ) as r:
            assert r.status == 200
        for expected in (world.oid, None):  # back to the old head, or from scratch
            async with s.put(
                srv.url(wire.HEAD, folder=F), json={"expected": expected, "new": world.oid}
            ) as r:
                assert r.status == 409
                doc = await r.json()
                assert wire.HeadState.from_wire(doc) == wire.HeadState(other_id, 2)
                assert doc["error"]


async def test_no_secret_at_rest(world: World) -> None:
    blobs = b"".join(p.read_bytes() for p in world.srv.data_dir.glob("meta.db*"))
    secrets_ = [world.srv.password, world.srv.token, *world.tokens.values()]
    assert blobs and all(x.encode() not in blobs for x in secrets_)
    assert (world.srv.data_dir / "meta.db").stat().st_mode & 0o077 == 0


async def test_login_rate_limit(world: World) -> None:
    srv = world.srv
    async with aiohttp.ClientSession() as s:
        statuses = []
        for _ in range(7):
            async with s.post(
                srv.url(wire.LOGIN), json={"user": "bob", "password": "nope-nope"}
            ) as r:
                statuses.append(r.status)
        async with s.post(srv.url(wire.LOGIN), json={"user": "bob", "password": srv.password}) as r:
            statuses.append(r.status)
    assert statuses == [401] * 5 + [429] * 3
    actions = [e.action for e in admin.read_audit(srv.data_dir)]
    assert actions.count("login.failed") == 5 and actions.count("login.limited") == 3


async def test_totp_login(world: World) -> None:
    import pyotp

    srv = world.srv
    async with aiohttp.ClientSession() as s:
        async with s.post(srv.url(wire.TOTP_ENROLL), headers=srv.headers()) as r:
            secret = (await r.json())["secret"]
        body = {"user": srv.user, "password": srv.password}
        async with s.post(srv.url(wire.LOGIN), json=body) as r:
            assert r.status == 401 and (await r.json())["totp_required"] is True
        creds = await login(s, srv.base_url, srv.user, totp=pyotp.TOTP(secret).now())
        assert creds["token"]


async def test_expired_token_is_401(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv", token_ttl=0.001) as srv:
        async with aiohttp.ClientSession(headers=srv.headers()) as s:
            async with s.get(srv.url(wire.WHOAMI)) as r:
                assert r.status == 401
                assert (await r.json())["error"] == "expired token"
