"""Device tokens can add objects and advance a head, never delete or rewind history."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from chunksync import wire
from tests.helpers.server import serve_in_process


async def test_no_route_deletes_objects_or_heads_and_attempts_are_refused(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv") as srv, aiohttp.ClientSession() as s:
        h = srv.headers()
        assert (await s.post(srv.url(wire.FOLDERS), json={"name": "f"}, headers=h)).status == 201
        blob = b"sealed bytes"
        oid = wire.blob_digest(b"id-source").hex()
        put = await s.put(
            srv.url(wire.OBJECT, folder="f", oid=oid),
            data=blob,
            headers={**h, wire.DIGEST_HEADER: wire.blob_digest(blob).hex()},
        )
        assert put.status in (200, 201)
        cas = await s.put(
            srv.url(wire.HEAD, folder="f"), json={"expected": None, "new": oid}, headers=h
        )
        assert cas.status == 200
        for method, route in (
            ("DELETE", wire.OBJECT),
            ("DELETE", wire.HEAD),
            ("DELETE", wire.FOLDER),
            ("DELETE", wire.OBJECTS),
            ("DELETE", wire.HEAD_LOG),
        ):
            resp = await s.request(method, srv.url(route, folder="f", oid=oid), headers=h)
            assert resp.status in (403, 404, 405), (method, route, resp.status)
        # rewinding to "no head" by naming the current one as expected is refused too
        rewind = await s.put(
            srv.url(wire.HEAD, folder="f"), json={"expected": oid, "new": None}, headers=h
        )
        assert rewind.status == 400
        got = await s.get(srv.url(wire.OBJECT, folder="f", oid=oid), headers=h)
        assert got.status == 200 and await got.read() == blob
        head = await (await s.get(srv.url(wire.HEAD, folder="f"), headers=h)).json()
        assert head["head"] == oid
