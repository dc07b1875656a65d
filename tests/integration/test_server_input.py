"""Hostile and broken input: every refusal is a 4xx with a one-line {"error"} body and
no partial or bad object ever becomes visible. Caps are shrunk for speed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from chunksync import wire
from tests.helpers.server import RunningServer, serve_in_process

F = "f"
CAPS = {"max_blob_size": 64 * 1024, "max_batch_bytes": 256 * 1024, "max_json_bytes": 16 * 1024}


@pytest_asyncio.fixture
async def srv(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serve_in_process(tmp_path / "srv", **CAPS) as server:
        async with aiohttp.ClientSession(headers=server.headers()) as s:
            async with s.post(server.url(wire.FOLDERS), json={"name": F}) as r:
                assert r.status == 201
        yield server


def obj(size: int = 1000) -> tuple[bytes, bytes]:
    blob = os.urandom(size)
    return wire.blob_digest(blob), blob


async def expect_error(resp: aiohttp.ClientResponse, status: int) -> str:
    assert resp.status == status, await resp.text()
    doc = await resp.json()
    assert isinstance(doc["error"], str) and doc["error"] and "\n" not in doc["error"]
    return str(doc["error"])


async def missing(s: aiohttp.ClientSession, srv: RunningServer, ids: list[bytes]) -> list[str]:
    async with s.post(srv.url(wire.MISSING, folder=F), json={"ids": [i.hex() for i in ids]}) as r:
        assert r.status == 200
        return list((await r.json())["missing"])


@pytest.mark.parametrize(
    "ids",
    [
        ["AB" * 32],
        ["ab" * 31],
        ["zz" * 32],
        [1234],
        "notalist",
        [None],
        ["ab" * 32 + "\n"],
    ],
)
async def test_malformed_ids(srv: RunningServer, ids: Any) -> None:
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        for route in (wire.MISSING, wire.OBJECTS_FETCH):
            async with s.post(srv.url(route, folder=F), json={"ids": ids}) as r:
                await expect_error(r, 400)
        async with s.get(srv.url(wire.OBJECT, folder=F, oid="AB" * 32)) as r:
            await expect_error(r, 400)


@pytest.mark.parametrize(
    "body,status",
    [
        (b"{not json", 400),
        (b"[1,2]", 400),
        (b'{"ids": [], "extra": 1}', 400),
        (b'{"ids": 5}', 400),
        (b"\xff\xfe", 400),
        (b'{"ids": ["' + b"a" * 20000 + b'"]}', 413),
    ],
)
async def test_bad_json(srv: RunningServer, body: bytes, status: int) -> None:
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        async with s.post(
            srv.url(wire.MISSING, folder=F), data=body, headers={"Content-Type": "application/json"}
        ) as r:
            await expect_error(r, status)
        async with s.put(
            srv.url(wire.HEAD, folder=F), json={"expected": None, "new": "ab" * 32, "force": True}
        ) as r:
            assert "force" in await expect_error(r, 400)


async def test_single_upload_digest_mismatch_and_oversize(srv: RunningServer) -> None:
    digest, blob = obj()
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        url = srv.url(wire.OBJECT, folder=F, oid=digest.hex())
        async with s.put(url, data=blob, headers={wire.DIGEST_HEADER: "00" * 32}) as r:
            await expect_error(r, 400)
        async with s.put(url, data=blob) as r:
            await expect_error(r, 400)  # no digest header
        big = os.urandom(CAPS["max_blob_size"] + 1)
        async with s.put(
            url, data=big, headers={wire.DIGEST_HEADER: wire.blob_digest(big).hex()}
        ) as r:
            await expect_error(r, 413)
        assert await missing(s, srv, [digest]) == [digest.hex()]


async def test_batch_digest_mismatch_keeps_only_frames_before(srv: RunningServer) -> None:
    good = [obj() for _ in range(3)]
    bad_digest, bad_blob = obj()
    body = wire.encode_upload_frames(good[:2])
    tampered = bytearray(wire.encode_upload_frames([(bad_digest, bad_blob)]))
    tampered[-1] ^= 1
    body += bytes(tampered) + wire.encode_upload_frames(good[2:])
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        async with s.post(
            srv.url(wire.OBJECTS, folder=F), data=body, headers={"Content-Type": wire.BATCH_TYPE}
        ) as r:
            await expect_error(r, 400)
        ids = [g[0] for g in good] + [bad_digest]
        assert await missing(s, srv, ids) == [good[2][0].hex(), bad_digest.hex()]


@pytest.mark.parametrize("cut", [10, 68 + 500])  # inside a header, inside a blob
async def test_truncated_batch(srv: RunningServer, cut: int) -> None:
    first, second = obj(), obj()
    body = wire.encode_upload_frames([first, second])
    body = body[: len(body) - (68 + 1000) + cut]
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        async with s.post(
            srv.url(wire.OBJECTS, folder=F), data=body, headers={"Content-Type": wire.BATCH_TYPE}
        ) as r:
            assert "truncated" in await expect_error(r, 400)
        assert await missing(s, srv, [first[0], second[0]]) == [second[0].hex()]


async def test_batch_caps(srv: RunningServer) -> None:
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        url = srv.url(wire.OBJECTS, folder=F)
        big = os.urandom(CAPS["max_blob_size"] + 1)
        frame = wire.encode_upload_frames([(wire.blob_digest(big), big)])
        async with s.post(url, data=frame, headers={"Content-Type": wire.BATCH_TYPE}) as r:
            await expect_error(r, 413)
        async with s.post(url, data=b"x", headers={"Content-Type": "text/plain"}) as r:
            await expect_error(r, 415)


async def raw_request(
    srv: RunningServer, head: str, body_chunks: int, chunk: bytes
) -> tuple[int, int]:
    """Send a raw HTTP request; returns (status, body bytes the server let us write)."""
    host, port = srv.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode())
    sent = 0

    async def pump() -> None:
        nonlocal sent
        for _ in range(body_chunks):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)

    pumping = asyncio.create_task(pump())
    status_line = await asyncio.wait_for(reader.readline(), 10)
    pumping.cancel()
    await asyncio.gather(pumping, return_exceptions=True)
    writer.close()
    return int(status_line.split()[1]), sent


async def test_oversized_content_length_refused_before_reading(srv: RunningServer) -> None:
    head = (
        f"POST {wire.OBJECTS.format(folder=F)} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {srv.token}\r\nContent-Type: {wire.BATCH_TYPE}\r\n"
        f"Content-Length: {10**12}\r\n\r\n"
    )
    status, _ = await raw_request(srv, head, 0, b"")
    assert status == 413


async def test_chunked_body_over_cap_is_cut_off(srv: RunningServer) -> None:
    digest, blob = obj(60_000)
    frame = wire.encode_upload_frames([(digest, blob)])
    head = (
        f"POST {wire.OBJECTS.format(folder=F)} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {srv.token}\r\nContent-Type: {wire.BATCH_TYPE}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    total_chunks = 100_000  # ~6 GB if the server kept reading
    status, sent = await raw_request(srv, head, total_chunks, frame)
    assert status == 413
    assert sent < 200 * len(frame)  # the server stopped reading long before the end
    # single uploads are capped the same way
    head = (
        f"PUT {wire.OBJECT.format(folder=F, oid=digest.hex())} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {srv.token}\r\n{wire.DIGEST_HEADER}: {digest.hex()}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    status, sent = await raw_request(srv, head, total_chunks, blob)
    assert status == 413 and sent < 200 * len(blob)


async def test_head_must_exist_and_ids_valid(srv: RunningServer) -> None:
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        url = srv.url(wire.HEAD, folder=F)
        async with s.put(url, json={"expected": None, "new": "ab" * 32}) as r:
            await expect_error(r, 400)
        async with s.put(url, json={"expected": "zz", "new": "ab" * 32}) as r:
            await expect_error(r, 400)
        async with s.put(url, json={"new": "ab" * 32}) as r:
            await expect_error(r, 400)
        async with s.get(srv.url(wire.HEAD_LOG, folder=F), params={"limit": "x"}) as r:
            await expect_error(r, 400)
        async with s.get(srv.url(wire.HEAD, folder="../etc")) as r:
            assert r.status in (400, 404)
        async with s.post(srv.url(wire.OBJECTS_FETCH, folder=F), json={"ids": ["ab" * 32]}) as r:
            await expect_error(r, 404)
            assert (await r.json())["missing"] == ["ab" * 32]
