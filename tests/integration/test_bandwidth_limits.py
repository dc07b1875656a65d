"""Bandwidth limits (transport/ratelimit.py): the token bucket on an injected clock, and a
real transfer to the real server throttled by it — timed by the fake clock, never by
the wall clock."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.objects import ObjectId
from chunksync.transport import HttpClient
from chunksync.transport.ratelimit import (
    KIB,
    BandwidthLimits,
    Limiter,
    RateLimitedChunkStore,
    TokenBucket,
    effective,
    limited,
)
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401
from tests.helpers.server import serve_in_process

pytestmark = pytest.mark.integration


class FakeClock:
    """Time that passes only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def bucket(clock: FakeClock, rate: float, burst: float | None = None) -> TokenBucket:
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)


async def test_a_bucket_lets_a_burst_through_then_paces_at_its_rate() -> None:
    clock = FakeClock()
    b = bucket(clock, rate=1000)
    await b.take(1000)  # the burst: no wait
    assert clock.sleeps == []
    for _ in range(5):
        await b.take(500)
    assert sum(clock.sleeps) == pytest.approx(2.5)
    clock.now += 10  # idle time refills up to the burst, not beyond
    await b.take(1000)
    await b.take(1000)
    assert sum(clock.sleeps) == pytest.approx(3.5)


async def test_a_transfer_larger_than_the_burst_waits_for_its_debt() -> None:
    clock = FakeClock()
    b = bucket(clock, rate=100, burst=100)
    await b.take(1000)
    assert sum(clock.sleeps) == pytest.approx(9.0)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        BandwidthLimits(upload_kib=-1)


def test_effective_limits_are_the_tightest_of_each_direction() -> None:
    assert effective(
        BandwidthLimits(100, 0), BandwidthLimits(50, 0), BandwidthLimits(0, 7)
    ) == BandwidthLimits(50, 7)
    assert effective() == BandwidthLimits(0, 0)


def test_no_limit_means_no_wrapper() -> None:
    sentinel = object()
    assert limited(sentinel, Limiter.of(BandwidthLimits())) is sentinel  # type: ignore[arg-type]


def blobs(keys: FolderKeys, n: int, size: int) -> list[tuple[ObjectId, bytes]]:
    out = []
    for _ in range(n):
        data = os.urandom(size)
        out.append((keys.chunk_id(data), data))
    return out


async def test_a_limit_throttles_a_real_upload_and_download(
    tmp_path: Path, folder_keys: FolderKeys
) -> None:
    limit = 64 * KIB
    async with serve_in_process(tmp_path / "server") as srv:
        client = HttpClient(srv.base_url, srv.token)
        await client.create_folder("docs")
        inner = client.folder("docs")
        up_clock, down_clock = FakeClock(), FakeClock()
        store = RateLimitedChunkStore(
            inner, up=[bucket(up_clock, limit)], down=[bucket(down_clock, limit)]
        )
        items = blobs(folder_keys, 40, 16 * KIB)  # 640 KiB: ten seconds' worth
        total = sum(len(b) for _, b in items)
        try:
            await store.put_many(items)
            assert await inner.missing([oid for oid, _ in items]) == set()  # really sent
            up_time = up_clock.now - 1000.0
            assert up_time >= (total - limit) / limit * 0.8
            assert max(up_clock.sleeps) <= 1.5  # even pacing: about a second's worth per piece

            got = await store.get_many([oid for oid, _ in items])
            assert len(got) == len(items)
            down_time = down_clock.now - 1000.0
            assert down_time >= (sum(len(b) for b in got.values()) - limit) / limit * 0.8
        finally:
            await inner.aclose()
            await client.aclose()


def test_limits_are_kept_per_folder_and_shown_by_status(cli_world: CliWorld) -> None:
    world = cli_world
    world.login("a")
    root = world.folder("a")
    world.run("a", "init", str(root), "--folder", "docs", "--limit-download", "300")
    assert json.loads(world.run("a", "limit", str(root), "--json").output) == {
        "upload_kib": 0,
        "download_kib": 300,
    }
    out = world.run("a", "limit", str(root), "--upload", "200", "--json").output
    assert json.loads(out) == {"upload_kib": 200, "download_kib": 300}
    config = json.loads((root / ".chunksync" / "config.json").read_text())
    assert (config["limit_upload_kib"], config["limit_download_kib"]) == (200, 300)
    doc = json.loads(world.run("a", "status", str(root), "--json").output)
    assert (doc["limit_upload_kib"], doc["limit_download_kib"]) == (200, 300)
    (root / "note.txt").write_text("limited but synced\n")
    world.run("a", "sync", str(root), "--limit-upload", "100")
    world.login("b")
    world.run("b", "join", str(world.folder("b")), "--folder", "docs", "--limit-upload", "50")
    assert (world.folder("b") / "note.txt").read_text() == "limited but synced\n"
    assert (
        json.loads(world.run("b", "limit", str(world.folder("b")), "--json").output)["upload_kib"]
        == 50
    )
    bad = world.run("a", "limit", str(root), "--upload", "-5", ok=False)
    assert bad.exit_code != 0
