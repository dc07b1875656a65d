"""Full flow against a real server on 127.0.0.1: login → folder → missing → upload
(single and batch) → CAS head → log → download (single and batch)."""

from __future__ import annotations

import os

import aiohttp

from chunksync import wire
from tests.helpers.server import RunningServer, chunk_server

__all__ = ["chunk_server"]

F = "photos"


def blob_of(i: int, size: int = 100) -> tuple[bytes, bytes]:
    blob = os.urandom(size)
    return wire.blob_digest(blob)[::-1], blob  # any 32 bytes serve as an id


async def test_full_flow(chunk_server: RunningServer) -> None:
    srv = chunk_server
    h = srv.headers()
    async with aiohttp.ClientSession(headers=h) as s:
        async with s.get(srv.url(wire.WHOAMI)) as r:
            assert r.status == 200
            assert (await r.json())["user"] == srv.user
        async with s.post(srv.url(wire.FOLDERS), json={"name": F}) as r:
            assert r.status == 201
            assert (await r.json())["role"] == "owner"
        async with s.get(srv.url(wire.FOLDERS)) as r:
            doc = await r.json()
            assert [(f["name"], f["role"], f["head"]) for f in doc["folders"]] == [
                (F, "owner", None)
            ]

        objs = [blob_of(i) for i in range(5)]
        ids = [oid.hex() for oid, _ in objs]
        async with s.post(srv.url(wire.MISSING, folder=F), json={"ids": ids}) as r:
            assert r.status == 200
            assert (await r.json())["missing"] == ids

        oid0, blob0 = objs[0]
        async with s.put(
            srv.url(wire.OBJECT, folder=F, oid=oid0.hex()),
            data=blob0,
            headers={wire.DIGEST_HEADER: wire.blob_digest(blob0).hex()},
        ) as r:
            assert r.status == 201, await r.text()
        async with s.post(
            srv.url(wire.OBJECTS, folder=F),
            data=wire.encode_upload_frames(objs[1:]),
            headers={"Content-Type": wire.BATCH_TYPE},
        ) as r:
            assert r.status == 200, await r.text()
            assert await r.json() == {"received": 4, "stored": 4}
        # idempotent re-upload stores nothing new
        async with s.post(
            srv.url(wire.OBJECTS, folder=F),
            data=wire.encode_upload_frames(objs),
            headers={"Content-Type": wire.BATCH_TYPE},
        ) as r:
            assert await r.json() == {"received": 5, "stored": 0}
        async with s.post(srv.url(wire.MISSING, folder=F), json={"ids": ids}) as r:
            assert (await r.json())["missing"] == []

        async with s.get(srv.url(wire.HEAD, folder=F)) as r:
            got = wire.HeadState.from_wire(await r.json())
            assert (got.head, got.seq) == (None, 0) and got.epoch is not None
        async with s.put(srv.url(wire.HEAD, folder=F), json={"expected": None, "new": ids[4]}) as r:
            assert r.status == 200, await r.text()
            assert wire.HeadState.from_wire(await r.json()) == wire.HeadState(ids[4], 1)
        async with s.put(
            srv.url(wire.HEAD, folder=F), json={"expected": ids[4], "new": ids[3]}
        ) as r:
            assert wire.HeadState.from_wire(await r.json()) == wire.HeadState(ids[3], 2)
        async with s.get(srv.url(wire.HEAD_LOG, folder=F), params={"after": "0"}) as r:
            entries = [wire.HeadLogEntry.from_wire(e) for e in (await r.json())["entries"]]
        assert [(e.seq, e.head, e.previous) for e in entries] == [
            (1, ids[4], None),
            (2, ids[3], ids[4]),
        ]
        assert {e.device for e in entries} == {srv.device_id}
        assert {e.user for e in entries} == {srv.user}
        async with s.get(
            srv.url(wire.HEAD_LOG, folder=F), params={"after": "1", "limit": "5"}
        ) as r:
            assert [e["seq"] for e in (await r.json())["entries"]] == [2]

        async with s.get(srv.url(wire.OBJECT, folder=F, oid=ids[2])) as r:
            assert r.status == 200
            assert await r.read() == objs[2][1]
        async with s.post(srv.url(wire.OBJECTS_FETCH, folder=F), json={"ids": ids[::-1]}) as r:
            assert r.status == 200
            assert r.content_type == wire.BATCH_TYPE
            got = list(wire.iter_download_frames(await r.read()))
        assert got == objs[::-1]

        slot = "YWJj"
        async with s.put(srv.url(wire.KEYSLOT, folder=F, slot="main"), json={"blob": slot}) as r:
            assert r.status == 201
        async with s.get(srv.url(wire.KEYSLOTS, folder=F)) as r:
            assert await r.json() == {"slots": {"main": slot}}
        async with s.get(srv.url(wire.FOLDER, folder=F)) as r:
            doc = await r.json()
            assert (doc["head"], doc["seq"], doc["members"]) == (ids[3], 2, {srv.user: "owner"})


async def test_open_routes(chunk_server: RunningServer) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(chunk_server.url(wire.HEALTHZ)) as r:
            assert (await r.json())["status"] == "ok"
        async with s.get(chunk_server.url(wire.METRICS)) as r:
            text = await r.text()
            assert r.status == 200 and "chunksync_requests_total" in text


async def test_logout_and_rotate(chunk_server: RunningServer) -> None:
    srv = chunk_server
    async with aiohttp.ClientSession() as s:
        async with s.post(srv.url(wire.TOKEN_ROTATE), headers=srv.headers()) as r:
            assert r.status == 200
            new = await r.json()
        assert new["device_id"] == srv.device_id and new["token"] != srv.token
        async with s.get(srv.url(wire.WHOAMI), headers=srv.headers()) as r:
            assert r.status == 200  # until the new token is used: the answer may be lost
        async with s.get(srv.url(wire.WHOAMI), headers=srv.headers(new["token"])) as r:
            assert r.status == 200
        async with s.get(srv.url(wire.WHOAMI), headers=srv.headers()) as r:
            assert r.status == 401  # the old token died with the new one's first use
        async with s.post(srv.url(wire.LOGOUT), headers=srv.headers(new["token"])) as r:
            assert r.status == 204
        async with s.get(srv.url(wire.WHOAMI), headers=srv.headers(new["token"])) as r:
            assert r.status == 401
