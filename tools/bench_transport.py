"""Benchmark the HTTP transport against naive clients, side by side, on one loopback server.

For each corpus (many small objects, fewer large ones) it uploads the same data into a
fresh folder three ways and fetches it back:

* ``naive``   — one ``PUT /objects/{id}`` (upload) / ``GET`` (fetch) per object, in
  sequence: what a straightforward client does (the baseline);
* ``batch/1`` — :class:`HttpChunkStore` with one batch in flight;
* ``batch/4`` — :class:`HttpChunkStore` as shipped (4 batches in flight).

It also times one "which are missing" query over ``--missing`` ids. Figures are
objects/s and MB/s; ratios are against ``naive``. Server and client share this
machine's cores, so absolute numbers understate both; the ratios are what matter.

    .venv/bin/python tools/bench_transport.py [--small 2000] [--large 48] [--missing 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chunksync import wire
from chunksync.objects import ObjectId
from chunksync.transport import HttpClient
from tests.helpers.server import serve_in_process

Items = list[tuple[ObjectId, bytes]]


def corpus(n: int, size: int) -> Items:
    out = []
    for _ in range(n):
        blob = os.urandom(size)
        out.append((ObjectId(wire.blob_digest(blob)), blob))
    return out


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def naive_put(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], items: Items
) -> None:
    for oid, blob in items:
        h = {**headers, wire.DIGEST_HEADER: wire.blob_digest(blob).hex()}
        async with session.put(url.format(oid=oid.hex()), data=blob, headers=h) as resp:
            assert resp.status in (200, 201), resp.status


async def naive_get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], items: Items
) -> None:
    for oid, blob in items:
        async with session.get(url.format(oid=oid.hex()), headers=headers) as resp:
            assert await resp.read() == blob


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with serve_in_process(Path(tmp) / "server") as srv:
            client = HttpClient(srv.base_url, srv.token)
            headers = srv.headers()
            sets = {
                "small": corpus(args.small, args.small_size),
                "large": corpus(args.large, args.large_size),
            }
            print(
                f"{'corpus':7} {'variant':8} {'up obj/s':>10} {'up MB/s':>8} "
                f"{'down obj/s':>10} {'down MB/s':>9} {'up x':>6} {'down x':>6}"
            )
            async with aiohttp.ClientSession() as session:
                for name, items in sets.items():
                    total = sum(len(b) for _, b in items) / 1e6
                    base: tuple[float, float] | None = None
                    for variant in ("naive", "batch/1", "batch/4"):
                        folder = f"{name}-{variant.replace('/', '')}"
                        await client.create_folder(folder)
                        if variant == "naive":
                            url = srv.base_url + wire.OBJECT.replace("{folder}", folder)
                            up = await timed(lambda: naive_put(session, url, headers, items))
                            down = await timed(lambda: naive_get(session, url, headers, items))
                        else:
                            client.concurrency = int(variant[-1])
                            store = client.folder(folder)
                            ids = [oid for oid, _ in items]
                            up = await timed(lambda: store.put_many(items))
                            down = await timed(lambda: store.get_many(ids))
                        base = base or (up, down)
                        print(
                            f"{name:7} {variant:8} {len(items) / up:10.0f} {total / up:8.1f} "
                            f"{len(items) / down:10.0f} {total / down:9.1f} "
                            f"{base[0] / up:6.2f} {base[1] / down:6.2f}"
                        )
            store = client.folder("small-batch4")
            many = [ObjectId(os.urandom(32)) for _ in range(args.missing)]
            secs = await timed(lambda: store.missing(many))
            print(f"missing: {args.missing} ids in one call: {secs * 1000:.0f} ms")
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000, help="number of small objects")
    parser.add_argument("--small-size", type=int, default=4096)
    parser.add_argument("--large", type=int, default=48, help="number of large objects")
    parser.add_argument("--large-size", type=int, default=1024 * 1024)
    parser.add_argument("--missing", type=int, default=100_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
