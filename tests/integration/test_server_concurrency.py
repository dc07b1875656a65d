"""Compare-and-swap under contention, WebSocket head events and revocation, and the
audit chain's tamper detection — all against a real server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3

import aiohttp

from chunksync import wire
from chunksync_server import admin
from tests.helpers.server import RunningServer, chunk_server, login

__all__ = ["chunk_server"]

F = "race"
CLIENTS, ATTEMPTS = 20, 10


async def setup_folder(s: aiohttp.ClientSession, srv: RunningServer, n: int) -> list[str]:
    async with s.post(srv.url(wire.FOLDERS), json={"name": F}) as r:
        assert r.status == 201
    blobs = [os.urandom(32) for _ in range(n)]
    items = [(wire.blob_digest(b), b) for b in blobs]
    async with s.post(
        srv.url(wire.OBJECTS, folder=F),
        data=wire.encode_upload_frames(items),
        headers={"Content-Type": wire.BATCH_TYPE},
    ) as r:
        assert r.status == 200
    return [oid.hex() for oid, _ in items]


async def test_concurrent_cas_has_one_winner_per_base(chunk_server: RunningServer) -> None:
    srv = chunk_server
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        ids = await setup_folder(s, srv, CLIENTS * ATTEMPTS)
    wins: list[tuple[str | None, str]] = []

    async def client(k: int) -> None:
        async with aiohttp.ClientSession(headers=srv.headers()) as s:
            for attempt in range(ATTEMPTS):
                async with s.get(srv.url(wire.HEAD, folder=F)) as r:
                    base = wire.HeadState.from_wire(await r.json()).head
                new = ids[k * ATTEMPTS + attempt]
                async with s.put(
                    srv.url(wire.HEAD, folder=F), json={"expected": base, "new": new}
                ) as r:
                    assert r.status in (200, 409), await r.text()
                    if r.status == 200:
                        wins.append((base, new))

    await asyncio.gather(*(client(k) for k in range(CLIENTS)))
    bases = [b for b, _ in wins]
    assert len(bases) == len(set(bases)), "two winners on one base"
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        async with s.get(srv.url(wire.HEAD_LOG, folder=F), params={"limit": "1000"}) as r:
            log = [wire.HeadLogEntry.from_wire(e) for e in (await r.json())["entries"]]
        async with s.get(srv.url(wire.HEAD, folder=F)) as r:
            final = wire.HeadState.from_wire(await r.json())
    assert len(log) == len(wins) and [e.seq for e in log] == list(range(1, len(log) + 1))
    prev = None
    for entry in log:  # one chain: each previous is the prior head
        assert entry.previous == prev
        prev = entry.head
    assert (final.head, final.seq) == (prev, len(log))
    assert sorted(wins, key=str) == sorted(((e.previous, e.head) for e in log), key=str)


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, object]:
    msg = await asyncio.wait_for(ws.receive(), 2.0)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return dict(json.loads(msg.data))


async def test_websocket_pushes_head_and_closes_on_revoke(chunk_server: RunningServer) -> None:
    srv = chunk_server
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        ids = await setup_folder(s, srv, 2)
        second = await login(s, srv.base_url, srv.user, device_name="laptop")
        async with s.ws_connect(
            srv.url(wire.EVENTS, folder=F), headers=srv.headers(second["token"])
        ) as ws:
            hello = await next_json(ws)
            assert hello == {"type": "hello", "folder": F, "head": None, "seq": 0}
            loop = asyncio.get_running_loop()
            start = loop.time()
            async with s.put(
                srv.url(wire.HEAD, folder=F), json={"expected": None, "new": ids[0]}
            ) as r:
                assert r.status == 200
            event = await next_json(ws)
            assert loop.time() - start < 0.5
            assert event == {"type": "head", "folder": F, "head": ids[0], "seq": 1}
            # revoke through the admin path (another SQLite connection, like the CLI)
            await asyncio.to_thread(admin.revoke_device, srv.data_dir, second["device_id"])
            msg = await asyncio.wait_for(ws.receive(), 2.0)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 4001
        async with s.get(srv.url(wire.WHOAMI), headers=srv.headers(second["token"])) as r:
            assert r.status == 401


async def test_audit_chain_verifies_and_detects_tampering(chunk_server: RunningServer) -> None:
    srv = chunk_server
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        ids = await setup_folder(s, srv, 1)
        async with s.put(srv.url(wire.HEAD, folder=F), json={"expected": None, "new": ids[0]}) as r:
            assert r.status == 200
    result = admin.verify_audit(srv.data_dir)
    assert result.ok and result.rows >= 4
    actions = {e.action for e in admin.read_audit(srv.data_dir)}
    assert {"admin.user.add", "login.ok", "token.issue", "folder.create", "head.move"} <= actions
    assert [e.folder for e in admin.read_audit(srv.data_dir, folder=F)] == [F, F]

    conn = sqlite3.connect(srv.data_dir / "meta.db")
    try:
        try:
            conn.execute("UPDATE audit SET user = 'mallory' WHERE id = 3")
            raise AssertionError("the trigger should refuse updates")
        except sqlite3.DatabaseError as exc:
            assert "append-only" in str(exc)
        conn.execute("DROP TRIGGER audit_no_update")  # an attacker with file access
        conn.execute("UPDATE audit SET user = 'mallory' WHERE id = 3")
        conn.commit()
    finally:
        conn.close()
    result = admin.verify_audit(srv.data_dir)
    assert not result.ok and result.first_bad == 3
