"""The HTTP client transport: :class:`HttpClient` (account) and :class:`HttpChunkStore`.

This is the only module that touches aiohttp, and so the only place its exceptions are
converted: refused/reset/DNS/cut bodies → NetworkError, timeouts → TransportTimeout, 401/403 →
AuthError, 404 on objects → ObjectNotFound, 409 → RefConflict, other 4xx and anything
malformed → ProtocolError, 5xx/429 → the retryable ServerError.

The server is untrusted: every answer is validated before use — ids are 64 lowercase
hex and only ones we asked about, download frames are well formed, each blob at most
``wire.MAX_BLOB_SIZE``, JSON bodies bounded in size, redirects refused. TLS certificate
validation is always on (``ca_file`` adds a private CA); plain ``http://`` is accepted
only for loopback hosts. Idempotent calls are retried with :mod:`.retry`; ``cas_head``
is not (a lost answer is resolved by re-reading the head).

With a :class:`~.tokens.TokenKeeper` the device token is renewed before it expires and
a 401 is answered once by re-reading the shared credentials (:mod:`.tokens`); a 401
that stands is :class:`~chunksync.errors.DeviceRevoked`.

One :class:`aiohttp.ClientSession` with a bounded connector serves a client and all its
folder stores. Uploads stream their frames from the caller's buffers (no second copy of
a 64 MiB batch); downloads are parsed frame by frame from the socket.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
import ipaddress
import logging
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractStreamWriter

from .. import tracing, wire
from ..errors import (
    AuthError,
    ChunksyncError,
    ConfigError,
    DeviceRevoked,
    NetworkError,
    ObjectNotFound,
    ProtocolError,
    RefConflict,
    ServerUnreachable,
    TransportError,
    TransportTimeout,
    UserError,
)
from ..objects import ObjectId
from .base import (
    FRAME_OVERHEAD,
    HeadLogEntry,
    HeadState,
    check_folder,
    check_log,
    clean_reason,
    field_of,
    parse_event,
    parse_json,
    parse_keyslots,
    plan_batches,
    read_frames,
    run_bounded,
    split,
    status_error,
    unique,
)
from .retry import RetryPolicy, backoff_delay, call_with_retry
from .tokens import TokenKeeper, TokenState, renew_at

__all__ = ["HttpChunkStore", "HttpClient", "LoginResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What a login returns; the token never appears in reprs or logs."""

    token: str = field(repr=False)
    device_id: str
    expires_at: Any


_COALESCE_BELOW = 64 << 10
_COALESCE_BYTES = 256 << 10


class _FramesPayload(aiohttp.payload.Payload):
    """A batch upload body written frame by frame from the caller's blobs."""

    def __init__(self, frames: list[tuple[bytes, bytes, bytes]]) -> None:
        super().__init__(frames, content_type=wire.BATCH_TYPE)
        self._size = sum(FRAME_OVERHEAD + len(blob) for _, _, blob in frames)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a batch upload body is binary")

    async def write(self, writer: AbstractStreamWriter) -> None:
        # Small frames are coalesced (one socket write per ~256 KiB, not two per object);
        # a large blob is written as it is, without a copy.
        pending = bytearray()
        for oid, digest, blob in self._value:
            pending += wire.UPLOAD_FRAME_HEADER.pack(oid, digest, len(blob))
            if len(blob) < _COALESCE_BELOW:
                pending += blob
                if len(pending) < _COALESCE_BYTES:
                    continue
                await writer.write(bytes(pending))
                pending.clear()
            else:
                await writer.write(bytes(pending))
                pending.clear()
                await writer.write(blob)
        if pending:
            await writer.write(bytes(pending))


def _with_digests(batch: list[tuple[ObjectId, bytes]]) -> list[tuple[bytes, bytes, bytes]]:
    return [(oid, wire.blob_digest(blob), blob) for oid, blob in batch]


class HttpClient:
    """One account on one server: login, folders, and :meth:`folder` stores."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        ca_file: str | None = None,
        timeout: float = 60,
        retry: RetryPolicy | None = None,
        max_connections: int = 8,
        concurrency: int = 4,
        tokens: TokenKeeper | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self._keeper = tokens
        self._token = tokens.token if tokens is not None else token
        self._ca_file = ca_file
        self._timeout = timeout
        self.retry = retry or RetryPolicy()
        self._max_connections = max_connections
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        #: whether this server ever answered this client (a refused first connection
        #: is then "not running", said at once, not retried for seconds)
        self.reached = False

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r}, token={'set' if self._token else 'none'})"

    @property
    def token(self) -> str | None:
        return self._keeper.token if self._keeper is not None else self._token

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._tls())
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self._timeout, sock_read=self._timeout
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
            # aiohttp silently resends PUT/GET once after a disconnect; retries belong to
            # RetryPolicy alone, and a resent head CAS must not happen behind our back.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    def _tls(self) -> ssl.SSLContext | bool:
        """The TLS context for this server. Without a CA file of our own it is aiohttp's
        default verifying context (the same ``ssl.create_default_context()``, built once at
        its import): building another loads the system CA bundle again, ~40 ms of CPU on
        every command, and a plain-HTTP loopback server never uses it."""
        if self._ca_file is None:
            return True
        return ssl.create_default_context(cafile=self._ca_file)

    def _headers(self) -> dict[str, str]:
        token = self.token
        return {wire.AUTHORIZATION: f"Bearer {token}"} if token else {}

    async def renew_if_due(self) -> bool:
        """Renew the device token if two thirds of its lifetime have passed."""
        if self._keeper is None:
            return False
        return await self._keeper.renew_if_due(self._rotate)

    def renewal_delay(self) -> float:
        """Seconds until the token is due for renewal (an hour at most)."""
        return self._keeper.seconds_until_due() if self._keeper is not None else 3600.0

    async def adopt_newer_token(self, refused: str | None) -> bool:
        """After a 401: whether another token (rotated meanwhile) is there to try."""
        if self._keeper is None or refused is None:
            return False
        return await self._keeper.adopt_newer(refused)

    async def _rotate(self, token: str) -> TokenState:
        """POST rotate sending ``token`` (the keeper's current one, or ours)."""
        async with self.exchange("POST", wire.TOKEN_ROTATE, renew=False) as resp:
            doc = parse_json(await read_bounded(resp, wire.MAX_JSON_BYTES), "rotate")
        fresh = field_of(doc, "token", str)
        if not fresh or len(fresh) > 512 or not fresh.isascii() or not fresh.isprintable():
            raise ProtocolError("rotate: malformed token")
        expires = doc.get("expires_at")
        return TokenState(
            fresh,
            expires if isinstance(expires, int | float) else None,
            renew_at(expires, time.time()),
        )

    @asynccontextmanager
    async def exchange(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), renew: bool = True, **kw: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request whose response (status in ``ok``) the caller reads inside the block.

        Any aiohttp/OS error raised while sending or while the caller reads the body is
        converted here; other statuses become the matching ChunksyncError. A 401 for a
        token that another process has rotated meanwhile is sent once more.
        """
        what = f"{method} {path}"
        if renew:
            await self.renew_if_due()
        for attempt in (1, 2):
            sent = self.token
            try:
                async with self._ensure_session().request(
                    method,
                    self.base_url + path,
                    headers=tracing.inject(self._headers()),  # traceparent, when tracing
                    allow_redirects=False,
                    **kw,
                ) as resp:
                    self.reached = True
                    if resp.status not in ok:
                        body = await read_bounded(resp, 64 * 1024, truncate=True)
                        if (
                            resp.status == 401
                            and renew
                            and attempt == 1
                            and await self.adopt_newer_token(sent)
                        ):
                            continue
                        raise refusal(
                            status_error(resp.status, resp.reason or "", body, what), sent
                        )
                    yield resp
                    return
            except ChunksyncError:
                raise
            except Exception as exc:
                mapped = map_client_error(exc, what)
                if isinstance(mapped, NetworkError) and not self.reached:
                    mapped = unreachable(exc, self.base_url) or mapped
                if mapped is None:
                    raise
                raise mapped from exc

    async def request_json(self, method: str, path: str, **kw: Any) -> Any:
        async with self.exchange(method, path, **kw) as resp:
            return parse_json(await read_bounded(resp, wire.MAX_JSON_BYTES), f"{method} {path}")

    # --- account ----------------------------------------------------------------------
    async def login(
        self,
        user: str,
        password: str,
        device_name: str,
        totp: str | None = None,
        device_id: str | None = None,
    ) -> LoginResult:
        """Exchange credentials for a device token (not retried: logins are rate limited).
        With ``device_id`` (this device's, from an earlier login) the server revokes that
        device's old tokens and gives it the new one instead of adding a device."""
        body: dict[str, Any] = {"user": user, "password": password, "device_name": device_name}
        if totp is not None:
            body["totp"] = totp
        if device_id is not None and wire.DEVICE_ID.match(device_id):
            body["device_id"] = device_id
        doc = await self.request_json("POST", wire.LOGIN, json=body)
        token, device = field_of(doc, "token", str), field_of(doc, "device_id", (str, int))
        if not token or len(token) > 512 or not token.isascii() or not token.isprintable():
            raise ProtocolError("login: malformed token")
        self._token = token
        return LoginResult(token=token, device_id=str(device), expires_at=doc.get("expires_at"))

    async def whoami(self) -> dict[str, Any]:
        doc = await self.request_json("GET", wire.WHOAMI)
        if not isinstance(doc, dict):
            raise ProtocolError("whoami: expected a JSON object")
        return doc

    async def create_folder(self, name: str) -> None:
        check_folder(name)
        try:
            await self.request_json("POST", wire.FOLDERS, json={"name": name}, ok=(200, 201))
        except RefConflict as exc:
            raise UserError(exc.message) from exc

    async def list_folders(self) -> list[dict[str, Any]]:
        folders = field_of(await self.request_json("GET", wire.FOLDERS), "folders", list)
        if not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in folders):
            raise ProtocolError("folders: malformed folder list")
        return [dict(f) for f in folders]

    def folder(self, name: str, **options: Any) -> HttpChunkStore:
        """A store for one folder sharing this client's session (options: see HttpChunkStore)."""
        return HttpChunkStore(self, name, **options)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpChunkStore:
    """A :class:`~chunksync.transport.base.ChunkStore` for one folder over HTTP API v1."""

    def __init__(
        self,
        client: HttpClient,
        folder: str,
        *,
        fetch_group: int = 256,
        batch_bytes: int = wire.MAX_BATCH_BYTES,
        batch_objects: int = wire.MAX_BATCH_OBJECTS,
    ) -> None:
        check_folder(folder)
        self._c = client
        self.folder = folder
        self._fetch_group = max(1, min(fetch_group, wire.MAX_BATCH_OBJECTS))
        self._batch = (
            min(batch_bytes, wire.MAX_BATCH_BYTES),
            min(batch_objects, wire.MAX_BATCH_OBJECTS),
        )
        self._sockets: set[aiohttp.ClientWebSocketResponse] = set()
        self._closed = False
        self._round_epoch: str | None = None  # see cas_head
        self._send_epoch = True

    def __repr__(self) -> str:
        return f"HttpChunkStore({self._c.base_url!r}, folder={self.folder!r})"

    def _path(self, route: str, **kw: str) -> str:
        return route.format(folder=self.folder, **kw)

    async def _retry(self, fn: Any, what: str) -> Any:
        return await call_with_retry(fn, self._c.retry, what=f"{what} ({self.folder})")

    # --- objects ----------------------------------------------------------------------
    async def missing(self, ids: Sequence[ObjectId]) -> set[ObjectId]:
        wanted = unique(ids)
        parts = await run_bounded(
            (
                functools.partial(self._retry, functools.partial(self._missing_once, g), "missing")
                for g in split(wanted, wire.MAX_MISSING_IDS)
            ),
            self._c.concurrency,
        )
        return set().union(*parts)

    async def _missing_once(self, group: Sequence[ObjectId]) -> set[ObjectId]:
        asked = {oid.hex(): oid for oid in group}
        doc = await self._c.request_json(
            "POST", self._path(wire.MISSING), json={"ids": list(asked)}
        )
        out: set[ObjectId] = set()
        for item in field_of(doc, "missing", list):
            if not isinstance(item, str) or item not in asked:
                raise ProtocolError("missing: server named an id that was not asked about")
            out.add(asked[item])
        return out

    async def put_many(self, items: Sequence[tuple[ObjectId, bytes]]) -> None:
        async def upload(batch: list[tuple[ObjectId, bytes]]) -> None:
            frames = await asyncio.to_thread(_with_digests, batch)
            await self._retry(lambda: self._upload_once(frames), "upload")

        await run_bounded(
            (functools.partial(upload, b) for b in plan_batches(items, *self._batch)),
            self._c.concurrency,
        )

    async def _upload_once(self, frames: list[tuple[bytes, bytes, bytes]]) -> None:
        async with self._c.exchange(
            "POST", self._path(wire.OBJECTS), ok=(200, 201, 204), data=_FramesPayload(frames)
        ) as resp:
            await read_bounded(resp, wire.MAX_JSON_BYTES)

    async def get_many(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        out: dict[ObjectId, bytes] = {}
        parts = await run_bounded(
            (
                functools.partial(self._retry, functools.partial(self._fetch_once, g), "fetch")
                for g in split(unique(ids), self._fetch_group)
            ),
            self._c.concurrency,
        )
        for part in parts:
            out.update(part)
        return out

    async def _fetch_once(self, group: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        asked = {oid.hex(): oid for oid in group}
        path = self._path(wire.OBJECTS_FETCH)
        async with self._c.exchange("POST", path, ok=(200, 404), json={"ids": list(asked)}) as resp:
            if resp.status == 404:
                doc = parse_json(await read_bounded(resp, wire.MAX_JSON_BYTES), "fetch")
                named = doc.get("missing") if isinstance(doc, dict) else None
                if not isinstance(named, list) or not named or named[0] not in asked:
                    raise ProtocolError("fetch: 404 without a valid list of missing ids")
                raise ObjectNotFound(f"object {named[0]} not found on the server")
            return await read_frames(resp.content, asked)

    # --- head ---------------------------------------------------------------------------
    async def get_head(self) -> HeadState:
        doc = await self._retry(
            lambda: self._c.request_json("GET", self._path(wire.HEAD)), "get head"
        )
        state = HeadState.from_wire(doc)
        if self._round_epoch is None:
            self._round_epoch = state.epoch
        return state

    async def cas_head(self, expected: str | None, new: str) -> HeadState:
        if not wire.HEX_ID.match(new) or (expected is not None and not wire.HEX_ID.match(expected)):
            raise ProtocolError("head: malformed id")
        body: dict[str, object] = {"expected": expected, "new": new}
        # the epoch of the first head read since the last move: if a prune swept storage
        # since, the server refuses and the next round re-checks what it relies on
        epoch, self._round_epoch = self._round_epoch, None
        if epoch is not None and self._send_epoch:
            body["epoch"] = epoch
        try:
            try:
                doc = await self._c.request_json("PUT", self._path(wire.HEAD), json=body)
            except ProtocolError as exc:
                if "epoch" not in body or "unknown field 'epoch'" not in exc.message:
                    raise
                self._send_epoch = False  # a server from before prune: never again
                del body["epoch"]
                doc = await self._c.request_json("PUT", self._path(wire.HEAD), json=body)
        except RefConflict as exc:
            if exc.current == new:  # our own earlier try whose answer was lost
                return HeadState(new, exc.seq)
            raise
        state = HeadState.from_wire(doc)
        if state.head != new:
            raise ProtocolError("head: server acknowledged a different head")
        return state

    async def head_log(self, after: int = 0, limit: int = 1000) -> list[HeadLogEntry]:
        params = {"after": str(after), "limit": str(limit)}
        doc = await self._retry(
            lambda: self._c.request_json("GET", self._path(wire.HEAD_LOG), params=params),
            "head log",
        )
        entries = [HeadLogEntry.from_wire(e) for e in field_of(doc, "entries", list)]
        return check_log(entries, after, limit)

    # --- membership -----------------------------------------------------------------------
    async def role(self) -> str:
        doc = await self._retry(
            lambda: self._c.request_json("GET", self._path(wire.FOLDER)), "folder"
        )
        role = field_of(doc, "role", str)
        if role not in wire.ROLES:
            raise ProtocolError("folder: unknown role")
        return str(role)

    # --- key slots ------------------------------------------------------------------------
    async def get_keyslots(self) -> dict[str, bytes]:
        doc = await self._retry(
            lambda: self._c.request_json("GET", self._path(wire.KEYSLOTS)), "key slots"
        )
        return parse_keyslots(doc)

    async def put_keyslot(self, name: str, blob: bytes) -> None:
        if not wire.SLOT_NAME.match(name):
            raise ProtocolError(f"key slot name {name!r:.70} is invalid")
        body = {"blob": base64.b64encode(blob).decode()}
        path = self._path(wire.KEYSLOT, slot=name)
        await self._retry(
            lambda: self._c.request_json("PUT", path, json=body, ok=(200, 201, 204)), "put key slot"
        )

    # --- watch and lifecycle ----------------------------------------------------------------
    async def watch(self) -> AsyncIterator[HeadState]:
        """Current head after each (re)connect, then each pushed newer head; stops on close."""
        last, attempt = -1, 0
        while not self._closed:
            sent = self._c.token
            try:
                await self._c.renew_if_due()
                async with self._events() as ws:
                    state: HeadState | None = await self.get_head()
                    attempt = 0
                    while True:
                        if state is not None and state.seq > last:
                            last = state.seq
                            yield state
                        msg = await ws.receive()
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        state = parse_event(msg.data, self.folder)
            except AuthError as exc:
                if not await self._c.adopt_newer_token(sent):
                    final = refusal(exc, sent)
                    if final is exc:
                        raise
                    raise final from exc
                continue  # rotated by another process: reconnect with its token now
            except ChunksyncError as exc:
                log.info("head watch (%s) lost: %s", self.folder, exc)
            if self._closed:
                return
            policy = self._c.retry
            await policy.sleep(
                backoff_delay(attempt, policy.base_delay, policy.max_delay, policy.rand())
            )
            attempt += 1

    @asynccontextmanager
    async def _events(self) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        path = self._path(wire.EVENTS)
        try:
            ws = await self._c._ensure_session().ws_connect(
                self._c.base_url + path,
                headers=self._c._headers(),
                heartbeat=30,
                max_msg_size=64 * 1024,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise status_error(exc.status, exc.message, b"", f"GET {path}") from exc
        except Exception as exc:
            mapped = map_client_error(exc, f"GET {path}")
            if mapped is None:
                raise
            raise mapped from exc
        self._sockets.add(ws)
        try:
            yield ws
        finally:
            self._sockets.discard(ws)
            await ws.close()

    async def aclose(self) -> None:
        """Stop watchers of this folder; the session belongs to the HttpClient."""
        self._closed = True
        for ws in list(self._sockets):
            await ws.close()


async def read_bounded(
    resp: aiohttp.ClientResponse, limit: int, *, truncate: bool = False
) -> bytes:
    """Read a body of at most ``limit`` bytes (or its first ``limit`` if ``truncate``)."""
    data = bytearray()
    while chunk := await resp.content.read(65536):
        data += chunk
        if len(data) > limit:
            if truncate:
                return bytes(data[:limit])
            raise ProtocolError(f"{resp.method} {resp.url.path}: response body too large")
    return bytes(data)


# --- pure conversion of what comes back from aiohttp and the server -----------------------
def refusal(error: ChunksyncError, sent: str | None) -> ChunksyncError:
    """A 401 for a token we sent is final: :class:`DeviceRevoked`, with how to recover."""
    if isinstance(error, AuthError) and "(HTTP 401)" in error.message and sent:
        return DeviceRevoked(
            f"{error.message}: this device is no longer allowed on the server (revoked, "
            "logged out or expired); run 'chunksync login URL --user NAME' again"
        )
    return error


_LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}


def check_base_url(url: str) -> str:
    """The server URL without a trailing slash; http:// only for loopback hosts."""
    try:
        parsed = yarl.URL(url)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid server URL {url!r:.80}") from exc
    host = (parsed.host or "").lower()
    if parsed.scheme not in ("http", "https") or not host or parsed.query_string:
        raise ConfigError(f"server URL must be https://HOST[:PORT][/PATH], got {url!r:.80}")
    if parsed.user or parsed.password:
        raise ConfigError("server URL must not contain credentials")
    if parsed.scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"plain http:// is only allowed to loopback hosts, not {host!r}; use https"
        )
    return str(parsed.with_fragment(None)).rstrip("/")


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unreachable(exc: BaseException, base_url: str) -> ChunksyncError | None:
    """A first connection that was refused or timed out: a server that is not running
    (or a wrong URL), said with what to do, and not retried."""
    os_error = getattr(exc, "os_error", None)
    if (
        isinstance(exc, aiohttp.ClientConnectorError)
        and getattr(os_error, "errno", None) == errno.ECONNREFUSED
    ):
        return ServerUnreachable(
            f"cannot reach server at {base_url}: connection refused — is "
            "`chunksync-server serve` running there, and is the URL right?"
        )
    return None


def map_client_error(exc: BaseException, what: str) -> ChunksyncError | None:
    """Convert aiohttp/asyncio/OS errors; None for anything else (a bug: re-raise it)."""
    if isinstance(exc, TimeoutError):
        return TransportTimeout(f"{what}: timed out")
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return TransportError(f"{what}: TLS failed ({clean_reason(str(exc), 120)})")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return NetworkError(f"{what}: cannot resolve the server host")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return NetworkError(f"{what}: cannot connect ({clean_reason(str(exc.os_error), 120)})")
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | OSError):
        return NetworkError(f"{what}: connection lost ({type(exc).__name__})")
    if isinstance(exc, aiohttp.InvalidURL):
        return ConfigError(f"{what}: invalid URL")
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientError):
        return ProtocolError(f"{what}: bad response ({clean_reason(str(exc), 120)})")
    return None
