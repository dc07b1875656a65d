#!/usr/bin/env python3
"""Upload throughput and head-CAS rate of 1 vs 2 server processes (PostgreSQL + SeaweedFS).

    tools/bench_cluster.py [--clients 8] [--batches 20] [--blob-kib 64] [--cas 200]

Starts a durable throwaway PostgreSQL cluster (fsync on), a SeaweedFS S3 gateway and,
for each server count, that many ``chunksync-server serve`` processes behind nginx
(tests/helpers/cluster.py), all on 127.0.0.1. Then, through the load balancer:

* upload: ``--clients`` devices, each storing ``--batches`` batches of 16 blobs of
  ``--blob-kib`` KiB in its own folder; reports MB/s and objects/s;
* head CAS: ``--clients`` devices each moving their own folder's head ``--cas`` /
  clients times in a row (no contention: every move succeeds); reports moves/s.

Every loop is bounded by its counts. Figures for docs/deploy.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from chunksync.objects import ObjectId
from chunksync.transport.http import HttpClient
from chunksync_server import admin
from chunksync_server.config import DB_ENV, Argon2Params
from tests.helpers.cluster import Cluster
from tests.helpers.postgres import PgCluster
from tests.helpers.seaweed import SeaweedS3, dummy_credentials
from tests.helpers.server import DEFAULT_PASSWORD, login

BATCH = 16


async def _clients(url: str, count: int) -> list[HttpClient]:
    made = []
    async with aiohttp.ClientSession() as s:
        for n in range(count):
            creds = await login(s, url, "bench", device_name=f"bench{n}")
            headers = {"Authorization": f"Bearer {creds['token']}"}
            async with s.post(url + "/v1/folders", json={"name": f"f{n}"}, headers=headers):
                pass
            made.append(HttpClient(url, creds["token"]))
    return made


async def _upload(clients: list[HttpClient], batches: int, blob: int) -> tuple[float, int]:
    async def one(n: int, client: HttpClient) -> None:
        store = client.folder(f"f{n}")
        for _ in range(batches):
            items = [(ObjectId(secrets.token_bytes(32)), os.urandom(blob)) for _ in range(BATCH)]
            await store.put_many(items)

    started = time.perf_counter()
    await asyncio.gather(*(one(n, c) for n, c in enumerate(clients)))
    return time.perf_counter() - started, len(clients) * batches * BATCH


async def _cas(clients: list[HttpClient], total: int) -> tuple[float, int]:
    per = max(1, total // len(clients))
    plans = []
    for n, client in enumerate(clients):
        store = client.folder(f"f{n}")
        ids = [ObjectId(secrets.token_bytes(32)) for _ in range(per)]
        await store.put_many([(oid, b"head") for oid in ids])
        head = (await store.get_head()).head
        plans.append((store, head, ids))

    async def one(store, head, ids) -> None:  # type: ignore[no-untyped-def]
        for oid in ids:
            await store.cas_head(head, oid.hex())
            head = oid.hex()

    started = time.perf_counter()
    await asyncio.gather(*(one(*plan) for plan in plans))
    return time.perf_counter() - started, per * len(clients)


async def _measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    clients = await _clients(url, args.clients)
    try:
        seconds, objects = await _upload(clients, args.batches, args.blob_kib << 10)
        cas_seconds, moves = await _cas(clients, args.cas)
    finally:
        for client in clients:
            await client.aclose()
    return {
        "MB/s": objects * (args.blob_kib << 10) / seconds / 1e6,
        "objects/s": objects / seconds,
        "CAS/s": moves / cas_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--blob-kib", type=int, default=64)
    parser.add_argument("--cas", type=int, default=200)
    parser.add_argument("--servers", default="1,2", help="server counts to compare")
    args = parser.parse_args()
    os.environ.update(dummy_credentials())
    with PgCluster(durable=True) as pg, SeaweedS3() as weed:
        for count in [int(c) for c in args.servers.split(",")]:
            db_url = pg.new_database()
            os.environ[DB_ENV] = db_url
            with Cluster(count, db_url, weed.url("bench", f"n{count}")) as cluster:
                admin.add_user(
                    cluster.servers[0].data_dir,
                    "bench",
                    DEFAULT_PASSWORD,
                    params=Argon2Params.fast(),
                )
                figures = asyncio.run(_measure(cluster.url, args))
            line = "  ".join(f"{value:8.1f} {name}" for name, value in figures.items())
            print(f"{count} server(s): {line}", flush=True)


if __name__ == "__main__":
    main()
