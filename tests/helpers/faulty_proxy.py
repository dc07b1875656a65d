"""A small HTTP/1.1 fault-injecting proxy on 127.0.0.1 for hostile-network tests.

Put it between a client and a real server and queue faults; each request is handled
by the first queued rule whose ``match`` substring occurs in its request line
(``"POST /v1/folders/f/objects/fetch HTTP/1.1"``), and a rule is used ``count`` times.
Requests no rule matches pass through untouched. Faults:

* :meth:`FaultyProxy.drop` — read the request, close without answering;
* :meth:`FaultyProxy.delay` — hold the request ``seconds`` before forwarding it;
* :meth:`FaultyProxy.cut_request` / :meth:`FaultyProxy.cut_response` — forward only
  the first ``after_bytes`` bytes of the request / response, then close both sides;
* :meth:`FaultyProxy.respond` — answer with a canned response, never reaching upstream;
* :meth:`FaultyProxy.rewrite` — pass a parsed upstream :class:`Response` through a
  function and send what it returns (decoded from chunked, re-sent with a length).

To keep one request per connection, the proxy adds ``Connection: close`` to every
request (WebSocket upgrades are piped as they are). ``requests`` lists the request
lines seen, and :meth:`FaultyProxy.wait_requests` lets a test await traffic instead of
sleeping. Usage::

    async with FaultyProxy("127.0.0.1", server_port) as proxy:
        proxy.cut_response(200, match="/objects/fetch")
        client = HttpClient(proxy.url, token)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["FaultyProxy", "Response", "Rule"]


@dataclass(frozen=True, slots=True)
class Response:
    """A parsed HTTP response, as handed to and returned from a rewrite function."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    reason: str = "OK"

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    def with_body(self, body: bytes) -> Response:
        return replace(self, body=body)

    def encode(self) -> bytes:
        skip = {"content-length", "transfer-encoding", "connection"}
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in skip]
        lines += [f"Content-Length: {len(self.body)}", "Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1") + self.body


@dataclass(slots=True)
class Rule:
    action: str
    match: str | None = None
    count: int = 1
    seconds: float = 0.0
    after_bytes: int = 0
    response: Response | None = None
    fn: Callable[[Response], Response] | None = field(default=None, repr=False)


class FaultyProxy:
    """Forward 127.0.0.1:``port`` to ``upstream``, applying queued faults per request."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rules: list[Rule] = []
        self.requests: list[str] = []
        self._seen = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultyProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultyProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- queueing faults -------------------------------------------------------------------
    def drop(self, *, match: str | None = None, count: int = 1) -> None:
        self.rules.append(Rule("drop", match, count))

    def delay(self, seconds: float, *, match: str | None = None, count: int = 1) -> None:
        self.rules.append(Rule("delay", match, count, seconds=seconds))

    def cut_request(self, after_bytes: int, *, match: str | None = None, count: int = 1) -> None:
        self.rules.append(Rule("cut_request", match, count, after_bytes=after_bytes))

    def cut_response(self, after_bytes: int, *, match: str | None = None, count: int = 1) -> None:
        self.rules.append(Rule("cut_response", match, count, after_bytes=after_bytes))

    def respond(
        self,
        status: int,
        body: bytes | dict[str, Any] = b"",
        *,
        content_type: str = "application/json",
        match: str | None = None,
        count: int = 1,
    ) -> None:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        resp = Response(status, (("Content-Type", content_type),), raw, reason="Injected")
        self.rules.append(Rule("respond", match, count, response=resp))

    def rewrite(
        self, fn: Callable[[Response], Response], *, match: str | None = None, count: int = 1
    ) -> None:
        self.rules.append(Rule("rewrite", match, count, fn=fn))

    def clear(self) -> None:
        self.rules.clear()

    async def kill_connections(self) -> None:
        """Abort every open connection (both sides), e.g. to break a WebSocket."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_requests(self, n: int, match: str | None = None) -> None:
        """Wait until ``n`` requests (whose line contains ``match``) have arrived."""

        def enough() -> bool:
            return sum(1 for r in self.requests if match is None or match in r) >= n

        async with self._seen:
            await self._seen.wait_for(enough)

    # --- per connection -------------------------------------------------------------------
    def _take(self, line: str) -> Rule | None:
        for rule in self.rules:
            if rule.count > 0 and (rule.match is None or rule.match in line):
                rule.count -= 1
                if rule.count == 0:
                    self.rules.remove(rule)
                return rule
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        async with self._seen:
            self.requests.append(line)
            self._seen.notify_all()
        rule = self._take(line)
        action = rule.action if rule else "pass"
        if action == "drop":
            return
        if action == "delay" and rule is not None:
            await asyncio.sleep(rule.seconds)
        if action == "respond" and rule is not None and rule.response is not None:
            await _read_request_body(reader, head)
            writer.write(rule.response.encode())
            await writer.drain()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            up_writer.write(_force_close(head))
            limit_up = rule.after_bytes if action == "cut_request" and rule else None
            pump = asyncio.create_task(_pipe(reader, up_writer, limit_up))
            try:
                if limit_up is not None:
                    await pump
                elif action == "rewrite" and rule is not None and rule.fn is not None:
                    resp = await _read_response(up_reader)
                    writer.write(rule.fn(resp).encode())
                    await writer.drain()
                else:
                    limit = rule.after_bytes if action == "cut_response" and rule else None
                    await _pipe(up_reader, writer, limit)
            finally:
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await pump
        finally:
            up_writer.close()


def _force_close(head: bytes) -> bytes:
    """Ask upstream to close after one response (unless this is a WebSocket upgrade)."""
    lines = head[:-4].split(b"\r\n")
    names = [ln.split(b":", 1)[0].strip().lower() for ln in lines[1:]]
    if b"upgrade" in names:
        return head
    kept = [lines[0]] + [ln for ln, n in zip(lines[1:], names) if n != b"connection"]
    return b"\r\n".join(kept + [b"Connection: close", b"", b""])


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, limit: int | None) -> None:
    """Copy until EOF, or only ``limit`` bytes and then stop (the caller closes)."""
    sent = 0
    while limit is None or sent < limit:
        want = 65536 if limit is None else min(65536, limit - sent)
        data = await src.read(want)
        if not data:
            break
        dst.write(data)
        await dst.drain()
        sent += len(data)
    if limit is None and dst.can_write_eof():
        with contextlib.suppress(OSError):
            dst.write_eof()


def _headers(head: bytes) -> list[tuple[str, str]]:
    out = []
    for ln in head.decode("latin-1").split("\r\n")[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            out.append((k.strip(), v.strip()))
    return out


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    hdr = {k.lower(): v for k, v in headers}
    if "chunked" in hdr.get("transfer-encoding", "").lower():
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return b"".join(parts)
    if "content-length" in hdr:
        return await reader.readexactly(int(hdr["content-length"]))
    return b""


async def _read_request_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    return await _read_body(reader, _headers(head))


async def _read_response(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    headers = _headers(head)
    if any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        body = await _read_body(reader, headers)
    else:
        body = await reader.read()
    reason = status_line[2] if len(status_line) > 2 else ""
    return Response(int(status_line[1]), tuple(headers), body, reason)
