"""Malformed requests are answered 400 with a JSON ``{"error"}`` body, never a 5xx.

The sweep walks every route the app serves with the shapes that used to crash a handler
further down: JSON nested 100k deep, integers no database column can hold (in the body
and in the query string), NaN, and query strings that are not integers at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from chunksync import wire
from tests.helpers.server import RunningServer, login, serve_in_process

F = "f"
HUGE = "9" * 30
DEEP = b"[" * 100_000
BODIES = [
    DEEP,
    b'{"ids": ' + DEEP + b"}",
    b'{"after": ' + HUGE.encode() + b', "limit": -' + HUGE.encode() + b"}",
    b'{"seq": 1e999, "size": NaN, "ids": [' + HUGE.encode() + b"]}",
    b"\xff\xfe garbage",
]
QUERIES = [
    f"after={HUGE}&limit={HUGE}&seq={HUGE}&size={HUGE}",
    f"after=-{HUGE}&limit=0",
    "after=%ff%fe&limit=1e9&seq=NaN",
    "after=\u0661\u0662&limit=+5",
    "%ff%00=%zz&&&=&after",
    "after=" + "9" * 5000,
]
PARAMS = {"folder": F, "oid": "ab" * 32, "slot": "s1", "device": "ab" * 8, "prune": "0" * 32}
# routes that end the calling token: swept with a token of their own
TOKEN_ENDING = {wire.LOGOUT, wire.TOKEN_ROTATE}


@pytest_asyncio.fixture
async def srv(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serve_in_process(tmp_path / "srv") as server:
        async with aiohttp.ClientSession(headers=server.headers()) as s:
            async with s.post(server.url(wire.FOLDERS), json={"name": F}) as r:
                assert r.status == 201
        yield server


def routes(srv: RunningServer) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, HEAD excepted."""
    found = set()
    for route in srv.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if template and route.method not in ("HEAD", "*"):
            found.add((route.method, template))
    return sorted(found)


async def send(
    s: aiohttp.ClientSession,
    srv: RunningServer,
    token: str,
    method: str,
    template: str,
    query: str,
    body: bytes,
) -> tuple[int, str]:
    url = srv.base_url + template.format(**PARAMS) + "?" + query
    headers = {**srv.headers(token), "Content-Type": "application/json"}
    async with s.request(method, url, data=body, headers=headers) as r:
        return r.status, await r.text()


async def test_malformed_requests_never_get_a_5xx(srv: RunningServer) -> None:
    table = routes(srv)
    assert len(table) >= 20, table
    failures = []
    async with aiohttp.ClientSession() as s:
        for method, template in table:
            cases = [(q, b) for q in QUERIES for b in BODIES[:1]] + [
                (QUERIES[0], b) for b in BODIES
            ]
            for query, body in cases:
                token = srv.token
                if template in TOKEN_ENDING:
                    token = (await login(s, srv.base_url, srv.user))["token"]
                status, text = await send(s, srv, token, method, template, query, body)
                if status >= 500:
                    failures.append(f"{method} {template}?{query[:40]} {body[:20]!r}: {status}")
                elif status >= 400 and not template.startswith("/admin"):  # pages: HTML
                    assert text.startswith("{") and '"error"' in text, (template, status, text)
    assert failures == []


@pytest.mark.parametrize("query", QUERIES)
async def test_log_with_huge_or_garbage_ints_is_400(srv: RunningServer, query: str) -> None:
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        async with s.get(srv.url(wire.HEAD_LOG, folder=F) + "?" + query) as r:
            assert r.status == 400, await r.text()
            assert "must be an integer" in (await r.json())["error"]


@pytest.mark.parametrize("body", BODIES)
async def test_deep_or_out_of_range_json_is_400(srv: RunningServer, body: bytes) -> None:
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        for route in (wire.MISSING, wire.OBJECTS_FETCH):
            async with s.post(
                srv.url(route, folder=F), data=body, headers={"Content-Type": "application/json"}
            ) as r:
                assert r.status == 400, await r.text()
                assert (await r.json())["error"]
        async with s.post(srv.base_url + wire.LOGIN, data=body) as r:
            assert r.status in (400, 413), await r.text()  # login caps bodies at 64 KiB
