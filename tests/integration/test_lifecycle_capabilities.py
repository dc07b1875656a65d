"""Deleting history needs the owner's fresh re-authentication: device tokens get 403.

Device tokens can add objects and advance the head; forget, the retention policy and
every prune step need a maintenance token from POST /v1/reauth (password, plus TOTP
when enrolled), and the server audits both the refusals and the operations.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import pyotp

from chunksync import wire
from chunksync_server import admin
from tests.helpers.server import create_user, login, serve_in_process

FAKE_PRUNE = "0" * 32


async def _folder_with_a_head(s: aiohttp.ClientSession, srv, h: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    assert (await s.post(srv.url(wire.FOLDERS), json={"name": "f"}, headers=h)).status == 201
    blob = b"sealed bytes"
    oid = wire.blob_digest(b"id-source").hex()
    put = await s.put(
        srv.url(wire.OBJECT, folder="f", oid=oid),
        data=blob,
        headers={**h, wire.DIGEST_HEADER: wire.blob_digest(blob).hex()},
    )
    assert put.status == 201
    cas = await s.put(
        srv.url(wire.HEAD, folder="f"), json={"expected": None, "new": oid}, headers=h
    )
    assert cas.status == 200
    return oid


def _deleting_calls(oid: str, prune: str) -> list[tuple[str, str, dict[str, object]]]:
    return [
        ("POST", wire.FORGET, {"snapshots": [oid]}),
        ("POST", wire.FORGET, {"snapshots": [oid], "reason": "purge"}),
        ("PUT", wire.RETENTION, {"policy": {"last": 1}}),
        ("POST", wire.PRUNE, {}),
        ("POST", wire.PRUNE_LIVE.replace("{prune}", prune), {"ids": [oid]}),
        ("POST", wire.PRUNE_SWEEP.replace("{prune}", prune), {"head": oid}),
    ]


async def test_device_tokens_get_403_on_every_deleting_operation(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv") as srv, aiohttp.ClientSession() as s:
        h = srv.headers()
        oid = await _folder_with_a_head(s, srv, h)
        for method, route, body in _deleting_calls(oid, FAKE_PRUNE):
            resp = await s.request(method, srv.url(route, folder="f"), json=body, headers=h)
            doc = await resp.json()
            assert resp.status == 403, (route, resp.status, doc)
            assert "re-authentication" in doc["error"]
        # a read-write member's maintenance token is refused too: only the owner deletes
        create_user(srv.data_dir, "bob")
        admin.add_member(srv.data_dir, "f", "bob", "read-write")
        bob = await login(s, srv.base_url, "bob", device_name="bob-laptop")
        bh = {"Authorization": f"Bearer {bob['token']}"}
        resp = await s.post(srv.url(wire.REAUTH), json={"password": srv.password}, headers=bh)
        assert resp.status == 200
        bob_m = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        for method, route, body in _deleting_calls(oid, FAKE_PRUNE):
            resp = await s.request(method, srv.url(route, folder="f"), json=body, headers=bob_m)
            assert resp.status == 403, (route, resp.status)
        # nothing was forgotten or deleted
        state = await (await s.get(srv.url(wire.LIFECYCLE, folder="f"), headers=h)).json()
        assert state["forgotten"] == [] and state["policy"] is None
        got = await s.get(srv.url(wire.OBJECT, folder="f", oid=oid), headers=h)
        assert got.status == 200
    denied = [r for r in admin.read_audit(srv.data_dir) if r.action == "request.denied"]
    assert any(json.loads(r.detail)["status"] == 403 for r in denied), denied


async def test_reauth_gives_a_short_lived_maintenance_token(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv") as srv, aiohttp.ClientSession() as s:
        h = srv.headers()
        oid = await _folder_with_a_head(s, srv, h)
        wrong = await s.post(srv.url(wire.REAUTH), json={"password": "nope"}, headers=h)
        assert wrong.status == 403  # not 401: the device token itself stays good
        # TOTP enrolled: the password alone is not enough any more
        secret = (await (await s.post(srv.url(wire.TOTP_ENROLL), headers=h)).json())["secret"]
        alone = await s.post(srv.url(wire.REAUTH), json={"password": srv.password}, headers=h)
        assert alone.status == 403 and (await alone.json()).get("totp_required") is True
        code = pyotp.TOTP(secret).now()
        ok = await s.post(
            srv.url(wire.REAUTH), json={"password": srv.password, "totp": code}, headers=h
        )
        assert ok.status == 200
        doc = await ok.json()
        assert doc["expires_at"] - time.time() <= 601  # minutes, not the device's 90 days
        again = await s.post(
            srv.url(wire.REAUTH), json={"password": srv.password, "totp": code}, headers=h
        )
        assert again.status == 403  # a TOTP code works once
        m = {"Authorization": f"Bearer {doc['token']}"}
        rotated = await s.post(srv.url(wire.TOKEN_ROTATE), headers=m)
        assert rotated.status == 403  # never renewed into a long-lived token
        # the current head is never forgotten, even by the owner
        refused = await s.post(
            srv.url(wire.FORGET, folder="f"), json={"snapshots": [oid]}, headers=m
        )
        assert refused.status == 409 and (await refused.json())["protected"] == [oid]
        saved = await s.put(
            srv.url(wire.RETENTION, folder="f"), json={"policy": {"last": 3}}, headers=m
        )
        assert saved.status == 200
        # the owner's device may apply the stored policy with its device token
        applied = await s.post(srv.url(wire.FORGET_POLICY, folder="f"), headers=h)
        assert applied.status == 200 and (await applied.json())["forgotten"] == 0
        start = await s.post(srv.url(wire.PRUNE, folder="f"), json={}, headers=m)
        assert start.status == 200
        prune = (await start.json())["prune"]
        live = await s.post(
            srv.url(wire.PRUNE_LIVE, folder="f", prune=prune), json={"ids": [oid]}, headers=m
        )
        assert live.status == 200
        swept = await s.post(
            srv.url(wire.PRUNE_SWEEP, folder="f", prune=prune), json={"head": oid}, headers=m
        )
        assert swept.status == 200 and (await swept.json())["deleted"] == 0
    actions = [r.action for r in admin.read_audit(srv.data_dir)]
    for action in ("reauth.failed", "reauth.ok", "lifecycle.policy", "lifecycle.prune"):
        assert action in actions, action
    assert json.dumps(actions)  # the chain holds them all
    assert admin.verify_audit(srv.data_dir).ok


async def test_the_owners_daemon_applies_the_stored_policy(tmp_path: Path) -> None:
    from chunksync.lifecycle import apply_stored_policy
    from chunksync.transport.http import HttpClient

    async with serve_in_process(tmp_path / "srv") as srv, aiohttp.ClientSession() as s:
        h = srv.headers()
        head = await _folder_with_a_head(s, srv, h)
        for n in range(4):  # four more snapshots, each moved by this device
            blob = f"snapshot {n}".encode()
            oid = wire.blob_digest(blob + b"-id").hex()
            put = await s.put(
                srv.url(wire.OBJECT, folder="f", oid=oid),
                data=blob,
                headers={**h, wire.DIGEST_HEADER: wire.blob_digest(blob).hex()},
            )
            assert put.status == 201
            cas = await s.put(
                srv.url(wire.HEAD, folder="f"), json={"expected": head, "new": oid}, headers=h
            )
            assert cas.status == 200
            head = oid
        device = HttpClient(srv.base_url, srv.token)
        try:
            assert await apply_stored_policy(device, "f") is None  # no policy stored yet
            resp = await s.post(srv.url(wire.REAUTH), json={"password": srv.password}, headers=h)
            m = {"Authorization": f"Bearer {(await resp.json())['token']}"}
            saved = await s.put(
                srv.url(wire.RETENTION, folder="f"), json={"policy": {"last": 2}}, headers=m
            )
            assert saved.status == 200
            assert await apply_stored_policy(device, "f") == 3
            assert await apply_stored_policy(device, "f") == 0  # already applied
        finally:
            await device.aclose()
        state = await (await s.get(srv.url(wire.LIFECYCLE, folder="f"), headers=h)).json()
        assert len(state["forgotten"]) == 3 and head not in state["forgotten"]
        assert state["policy"] == {"last": 2}
