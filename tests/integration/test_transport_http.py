"""HttpChunkStore against the real server through a fault-injecting proxy; retry policy.

Each test queues faults on :class:`tests.helpers.faulty_proxy.FaultyProxy` and checks
that the transport retries what is retryable (dropped and cut connections, 5xx) within
its bounds, and refuses what the server must not say (frames for ids not asked for,
truncated frames, malformed JSON) with the right :mod:`chunksync.errors` class. Retry
waits go through an injected sleep, so no test sleeps for real.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chunksync import wire
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.errors import (
    AuthError,
    ConfigError,
    NetworkError,
    ObjectNotFound,
    ProtocolError,
    TransportTimeout,
    UserError,
)
from chunksync.objects import ObjectId
from chunksync.transport import HeadState, HttpChunkStore, HttpClient, RetryPolicy, ServerError
from chunksync.transport.retry import backoff_delay, call_with_retry
from tests.helpers.faulty_proxy import FaultyProxy, Response
from tests.helpers.server import RunningServer, serve_in_process

pytestmark = pytest.mark.integration

FOLDER = "docs"


@dataclass
class Rig:
    srv: RunningServer
    proxy: FaultyProxy
    client: HttpClient
    store: HttpChunkStore
    waits: list[float]


def fast_policy(waits: list[float], attempts: int = 5) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    return RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=4.0, sleep=sleep)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with serve_in_process(tmp_path / "server") as srv:
        port = int(srv.base_url.rsplit(":", 1)[1])
        async with FaultyProxy("127.0.0.1", port) as proxy:
            waits: list[float] = []
            client = HttpClient(proxy.url, srv.token, retry=fast_policy(waits), timeout=10)
            await client.create_folder(FOLDER)
            store = client.folder(FOLDER)
            try:
                yield Rig(srv, proxy, client, store, waits)
            finally:
                await store.aclose()
                await client.aclose()


def blobs(keys: FolderKeys, n: int, size: int = 2000) -> list[tuple[ObjectId, bytes]]:
    out = []
    for _ in range(n):
        data = os.urandom(size)
        out.append((keys.chunk_id(data), data))
    return out


def count(proxy: FaultyProxy, needle: str) -> int:
    return sum(1 for line in proxy.requests if needle in line)


# --- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://10.0.0.1:8400",
        "ftp://127.0.0.1",
        "http://user:pw@127.0.0.1",
        "not a url",
    ],
)
def test_refuses_unsafe_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        HttpClient(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8400/",
        "http://127.8.9.1",
        "http://[::1]:1",
        "http://localhost:8400",
        "https://sync.example.com/base",
    ],
)
def test_accepts_tls_and_loopback_urls(url: str) -> None:
    assert HttpClient(url).base_url == url.rstrip("/")


def test_repr_hides_token() -> None:
    assert "s3cret" not in repr(HttpClient("http://127.0.0.1:1", "s3cret"))


# --- account -----------------------------------------------------------------------------
async def test_login_folders_whoami(rig: Rig) -> None:
    client = HttpClient(rig.proxy.url)
    try:
        result = await client.login(rig.srv.user, rig.srv.password, "laptop")
        assert result.token and result.token not in repr(result)
        assert client.token == result.token
        assert (await client.whoami())["user"] == rig.srv.user
        assert FOLDER in [f["name"] for f in await client.list_folders()]
        with pytest.raises(UserError, match="already exists"):
            await client.create_folder(FOLDER)
    finally:
        await client.aclose()


async def test_wrong_password_is_auth_error(rig: Rig) -> None:
    client = HttpClient(rig.proxy.url)
    try:
        with pytest.raises(AuthError):
            await client.login(rig.srv.user, "not the password", "laptop")
    finally:
        await client.aclose()


async def test_bad_token_is_auth_error_not_retried(rig: Rig) -> None:
    client = HttpClient(rig.proxy.url, "forged-token", retry=fast_policy(rig.waits))
    try:
        with pytest.raises(AuthError, match="401"):
            await client.folder(FOLDER).get_head()
    finally:
        await client.aclose()
    assert rig.waits == []


async def test_injected_401_carries_server_reason(rig: Rig) -> None:
    rig.proxy.respond(401, {"error": "device revoked\nforged log line"}, match="/head")
    with pytest.raises(AuthError, match="device revoked") as info:
        await rig.store.get_head()
    assert "forged" not in str(info.value)


# --- retries -------------------------------------------------------------------------------
async def test_dropped_connections_are_retried(rig: Rig, folder_keys: FolderKeys) -> None:
    items = blobs(folder_keys, 3)
    rig.proxy.drop(match="/objects/missing", count=2)
    assert await rig.store.missing([oid for oid, _ in items]) == {oid for oid, _ in items}
    assert count(rig.proxy, "/objects/missing") == 3
    assert len(rig.waits) == 2 and all(0 <= w <= 1.0 for w in rig.waits)


async def test_response_cut_mid_body_is_retried(rig: Rig, folder_keys: FolderKeys) -> None:
    items = blobs(folder_keys, 20, size=5000)
    await rig.store.put_many(items)
    rig.proxy.cut_response(3000, match="/objects/fetch")
    assert await rig.store.get_many([oid for oid, _ in items]) == dict(items)
    assert count(rig.proxy, "/objects/fetch") == 2


async def test_request_cut_mid_upload_is_retried(rig: Rig, folder_keys: FolderKeys) -> None:
    items = blobs(folder_keys, 10, size=20_000)
    rig.proxy.cut_request(50_000, match=f"/folders/{FOLDER}/objects HTTP")
    await rig.store.put_many(items)
    assert count(rig.proxy, f"/folders/{FOLDER}/objects HTTP") == 2
    assert await rig.store.missing([oid for oid, _ in items]) == set()


async def test_server_error_is_retried(rig: Rig) -> None:
    rig.proxy.respond(500, {"error": "disk on fire"}, match="/head")
    assert (await rig.store.get_head()).seq == 0
    assert count(rig.proxy, "/head") == 2


async def test_persistent_server_error_gives_up(rig: Rig) -> None:
    rig.proxy.respond(503, {"error": "maintenance"}, match="/head", count=100)
    with pytest.raises(ServerError, match="maintenance"):
        await rig.store.get_head()
    assert count(rig.proxy, "/head") == 5  # the policy's attempts


async def test_cas_is_not_retried(rig: Rig, folder_keys: FolderKeys) -> None:
    [(oid, blob)] = blobs(folder_keys, 1)
    await rig.store.put_many([(oid, blob)])
    rig.proxy.drop(match="PUT /v1/folders")
    with pytest.raises(NetworkError):
        await rig.store.cas_head(None, oid.hex())
    assert rig.waits == []
    assert (await rig.store.get_head()).head is None


async def test_lost_cas_answer_is_resolved_by_repeating(rig: Rig, folder_keys: FolderKeys) -> None:
    [(oid, blob)] = blobs(folder_keys, 1)
    await rig.store.put_many([(oid, blob)])
    rig.proxy.cut_response(0, match="PUT /v1/folders")
    with pytest.raises(NetworkError):
        await rig.store.cas_head(None, oid.hex())  # applied, but the answer is lost
    assert await rig.store.cas_head(None, oid.hex()) == HeadState(oid.hex(), 1)
    assert len(await rig.store.head_log()) == 1


async def test_connection_refused_fails_fast_after_bounded_retries() -> None:
    """A server that was reached once and then refuses (restarting) is retried, boundedly;
    one never reached is not running there: said at once, with what to do, no retry."""
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for reached, retries in ((True, 3), (False, 0)):
        waits: list[float] = []
        client = HttpClient(f"http://127.0.0.1:{port}", "t", retry=fast_policy(waits, attempts=4))
        client.reached = reached
        started = time.monotonic()
        message = "cannot connect" if reached else "connection refused — is `chunksync-server"
        try:
            with pytest.raises(NetworkError, match=message):
                await client.folder(FOLDER).missing([ObjectId(bytes(32))])
        finally:
            await client.aclose()
        assert len(waits) == retries
        assert time.monotonic() - started < 5


async def test_slow_server_times_out(rig: Rig) -> None:
    client = HttpClient(rig.proxy.url, rig.srv.token, timeout=0.2, retry=RetryPolicy(attempts=1))
    rig.proxy.delay(3, match="/head")
    try:
        with pytest.raises(TransportTimeout):
            await client.folder(FOLDER).get_head()
    finally:
        await client.aclose()


# --- hostile answers -------------------------------------------------------------------------
async def test_frame_for_unasked_id_is_refused(rig: Rig, folder_keys: FolderKeys) -> None:
    [(oid, blob)], [(other, _)] = blobs(folder_keys, 1), blobs(folder_keys, 1)
    await rig.store.put_many([(oid, blob)])

    def swap_id(resp: Response) -> Response:
        return resp.with_body(other + resp.body[32:])

    rig.proxy.rewrite(swap_id, match="/objects/fetch")
    with pytest.raises(ProtocolError, match="not asked"):
        await rig.store.get_many([oid])
    assert count(rig.proxy, "/objects/fetch") == 1  # never retried


@pytest.mark.parametrize("cut", [10, wire.DOWNLOAD_FRAME_HEADER.size + 5])
async def test_truncated_frame_is_refused(rig: Rig, folder_keys: FolderKeys, cut: int) -> None:
    [(oid, blob)] = blobs(folder_keys, 1)
    await rig.store.put_many([(oid, blob)])
    rig.proxy.rewrite(lambda r: r.with_body(r.body[:cut]), match="/objects/fetch")
    with pytest.raises(ProtocolError, match="truncated"):
        await rig.store.get_many([oid])


async def test_oversized_frame_and_omitted_object_are_refused(
    rig: Rig, folder_keys: FolderKeys
) -> None:
    (a, blob_a), (b, blob_b) = blobs(folder_keys, 2)
    await rig.store.put_many([(a, blob_a), (b, blob_b)])
    huge = wire.DOWNLOAD_FRAME_HEADER.pack(a, wire.MAX_BLOB_SIZE + 1)
    rig.proxy.respond(200, huge, content_type=wire.BATCH_TYPE, match="/objects/fetch")
    with pytest.raises(ProtocolError, match="size limit"):
        await rig.store.get_many([a])
    only_a = wire.encode_download_frames([(a, blob_a)])
    rig.proxy.respond(200, only_a, content_type=wire.BATCH_TYPE, match="/objects/fetch")
    with pytest.raises(ProtocolError, match="omitted"):
        await rig.store.get_many([a, b])


async def test_missing_object_is_object_not_found(rig: Rig, folder_keys: FolderKeys) -> None:
    [(oid, _)] = blobs(folder_keys, 1)
    with pytest.raises(ObjectNotFound, match=oid.hex()):
        await rig.store.get_many([oid])


async def test_unasked_missing_id_and_bad_json_are_refused(
    rig: Rig, folder_keys: FolderKeys
) -> None:
    [(oid, _)], [(other, _)] = blobs(folder_keys, 1), blobs(folder_keys, 1)
    rig.proxy.respond(200, {"missing": [other.hex()]}, match="/objects/missing")
    with pytest.raises(ProtocolError, match="not asked"):
        await rig.store.missing([oid])
    rig.proxy.respond(200, b"{not json", match="/head")
    with pytest.raises(ProtocolError, match="malformed JSON"):
        await rig.store.get_head()
    rig.proxy.respond(200, {"head": "zz", "seq": 1}, match="/head")
    with pytest.raises(ProtocolError, match="malformed id"):
        await rig.store.get_head()


# --- batching and watch ------------------------------------------------------------------------
async def test_put_many_splits_into_concurrent_batches(rig: Rig, folder_keys: FolderKeys) -> None:
    store = rig.client.folder(FOLDER, batch_bytes=10_000, fetch_group=7)
    items = blobs(folder_keys, 40, size=2000)
    await store.put_many(items)
    assert count(rig.proxy, f"/folders/{FOLDER}/objects HTTP") == 10  # 4 frames per batch
    assert await store.get_many([oid for oid, _ in items]) == dict(items)
    assert count(rig.proxy, "/objects/fetch") == 6  # ceil(40 / 7)


async def test_watch_reconnects_after_connection_loss(rig: Rig, folder_keys: FolderKeys) -> None:
    c1, c2 = blobs(folder_keys, 2)
    await rig.store.put_many([c1, c2])
    direct = HttpClient(rig.srv.base_url, rig.srv.token).folder(FOLDER)
    events = rig.store.watch()
    try:
        async with asyncio.timeout(10):
            assert (await anext(events)).seq == 0
            await direct.cas_head(None, c1[0].hex())
            assert (await anext(events)).head == c1[0].hex()
            await rig.proxy.kill_connections()
            await direct.cas_head(c1[0].hex(), c2[0].hex())  # while the watch is down
            assert (await anext(events)).head == c2[0].hex()
    finally:
        await events.aclose()  # type: ignore[attr-defined]
        await direct._c.aclose()
    assert count(rig.proxy, "/events") == 2


# --- the retry policy itself (pure; injected clock, sleep and randomness) ------------------------
class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


async def flaky(failures: list[Exception], result: str = "ok") -> str:
    if failures:
        raise failures.pop(0)
    return result


async def test_retry_full_jitter_windows_double_up_to_the_cap() -> None:
    fake = FakeTime()
    policy = RetryPolicy(
        attempts=6,
        base_delay=1,
        max_delay=5,
        sleep=fake.sleep,
        rand=lambda: 0.999,
        clock=lambda: fake.now,
    )
    errors: list[Exception] = [NetworkError("x") for _ in range(5)]
    assert await call_with_retry(lambda: flaky(errors), policy) == "ok"
    assert [round(w) for w in fake.waits] == [1, 2, 4, 5, 5]
    assert backoff_delay(3, 1, 5, 0.0) == 0.0  # full jitter may not wait at all


@pytest.mark.parametrize("error", [ProtocolError("p"), AuthError("a"), ObjectNotFound("o")])
async def test_retry_never_repeats_permanent_errors(error: Exception) -> None:
    fake = FakeTime()
    policy = RetryPolicy(sleep=fake.sleep, clock=lambda: fake.now)
    with pytest.raises(type(error)):
        await call_with_retry(lambda: flaky([error]), policy)
    assert fake.waits == []


async def test_retry_stops_at_the_deadline() -> None:
    fake = FakeTime()
    policy = RetryPolicy(
        attempts=100,
        base_delay=10,
        max_delay=10,
        deadline=25,
        sleep=fake.sleep,
        rand=lambda: 0.9,
        clock=lambda: fake.now,
    )
    errors: list[Exception] = [TransportTimeout("t") for _ in range(100)]
    with pytest.raises(TransportTimeout):
        await call_with_retry(lambda: flaky(errors), policy)
    assert fake.waits == [9.0, 9.0] and fake.now <= 25
