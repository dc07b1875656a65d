"""Two stateless servers on one PostgreSQL database and one SeaweedFS bucket, behind nginx.

One cluster for the module (starting servers costs seconds); each test uses its own
user and folder. What must hold with several servers: devices syncing through the load
balancer converge; a server killed mid-sync does not stop them (nginx sends them to
the other one); a head race between clients on both servers has exactly one winner per
round (the compare-and-swap is one conditional UPDATE in the shared database); head
events reach a device connected to the OTHER server (LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import psycopg
import pytest

from chunksync.errors import ChunksyncError, QuotaExceeded, RefConflict
from chunksync.objects import ObjectId
from chunksync.transport.http import HttpClient
from chunksync_server import admin
from chunksync_server.config import DB_ENV, Argon2Params
from tests.helpers.cluster import Cluster
from tests.helpers.devices import Device, tree_of
from tests.helpers.postgres import PgCluster
from tests.helpers.seaweed import SeaweedS3
from tests.helpers.server import DEFAULT_PASSWORD, login

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.s3, pytest.mark.integration]


@pytest.fixture(scope="module")
def cluster(pg_cluster: PgCluster, seaweed: SeaweedS3) -> Iterator[Cluster]:
    db_url = pg_cluster.new_database()
    with Cluster(2, db_url, seaweed.url("chunksync-cluster", "objects")) as running:
        running.db_url = db_url  # type: ignore[attr-defined]
        yield running


def add_user(cluster: Cluster, name: str, quota: int | None = None) -> None:
    """Create a user with the admin functions, on the cluster's database."""
    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = cluster.db_url  # type: ignore[attr-defined]
    try:
        data = cluster.servers[0].data_dir
        admin.add_user(data, name, DEFAULT_PASSWORD, params=Argon2Params.fast())
        if quota is not None:
            admin.set_quota(data, name, quota)
    finally:
        if old is None:
            del os.environ[DB_ENV]
        else:
            os.environ[DB_ENV] = old


@asynccontextmanager
async def clients(base_urls: list[str], user: str, folder: str) -> AsyncIterator[list[HttpClient]]:
    """One logged-in client per URL; the folder is created by the first."""
    made: list[HttpClient] = []
    async with aiohttp.ClientSession() as s:
        for n, url in enumerate(base_urls):
            creds = await login(s, url, user, device_name=f"dev{n}")
            made.append(HttpClient(url, creds["token"]))
        headers = {"Authorization": f"Bearer {creds['token']}"}
        async with s.post(base_urls[0] + "/v1/folders", json={"name": folder}, headers=headers):
            pass
    try:
        yield made
    finally:
        for client in made:
            await client.aclose()


async def sync_until_quiet(devices: list[Device], rounds: int = 4) -> None:
    for _ in range(rounds):
        for device in devices:
            await device.sync()


async def test_three_devices_converge_through_two_servers(
    cluster: Cluster, tmp_path: Path, folder_keys
) -> None:
    add_user(cluster, "ann")
    async with clients([cluster.url] * 3, "ann", "docs") as made:
        devices = [
            Device(f"d{i}", tmp_path / f"d{i}", c.folder("docs"), folder_keys)
            for i, c in enumerate(made)
        ]
        try:
            for i, device in enumerate(devices):
                device.write(f"from-{i}/notes.txt", f"device {i}\n" * 50)
                device.write(f"from-{i}/blob.bin", os.urandom(200_000))
            await sync_until_quiet(devices)
            devices[1].write("from-0/notes.txt", "edited on d1\n")
            await sync_until_quiet(devices, rounds=2)
            trees = [tree_of(d.root, mtimes=False) for d in devices]
            assert trees[0] == trees[1] == trees[2]
            assert len([p for p in trees[0] if p.endswith("blob.bin")]) == 3
            assert devices[2].read("from-0/notes.txt") == b"edited on d1\n"
        finally:
            for device in devices:
                device.close()


async def stored_objects(db_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM s3_objects")
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def test_a_server_killed_mid_sync_the_clients_carry_on_through_the_other(
    cluster: Cluster, tmp_path: Path, folder_keys
) -> None:
    add_user(cluster, "bob")
    db_url = cluster.db_url  # type: ignore[attr-defined]
    async with clients([cluster.url] * 2, "bob", "work") as made:
        writer, reader = (
            Device(f"d{i}", tmp_path / f"d{i}", c.folder("work"), folder_keys)
            for i, c in enumerate(made)
        )
        try:
            for n in range(60):
                writer.write(f"batch/{n:02}.bin", os.urandom(60_000))
            before = await stored_objects(db_url)
            sync = asyncio.create_task(writer.sync())
            deadline = asyncio.get_running_loop().time() + 60
            while await stored_objects(db_url) == before and not sync.done():
                assert asyncio.get_running_loop().time() < deadline, "no upload started"
                await asyncio.sleep(0.02)
            cluster.servers[0].kill()  # mid-sync: uploads were under way
            try:
                await sync
            except ChunksyncError:  # an answer lost with the server: the next sync resumes
                await writer.sync()
            await sync_until_quiet([writer, reader], rounds=2)
            assert tree_of(writer.root, mtimes=False) == tree_of(reader.root, mtimes=False)
            assert len(list((reader.root / "batch").iterdir())) == 60
        finally:
            writer.close()
            reader.close()
            cluster.servers[0].start()  # the next test has two servers again


async def test_twenty_clients_racing_across_both_servers_one_winner_per_round(
    cluster: Cluster,
) -> None:
    add_user(cluster, "cas")
    urls = [cluster.servers[i % 2].base_url for i in range(20)]
    async with clients(urls, "cas", "race") as made:
        stores = [c.folder("race") for c in made]
        expected: str | None = None
        for _ in range(5):
            ids = [ObjectId(secrets.token_bytes(32)) for _ in stores]
            await asyncio.gather(*(st.put_many([(oid, b"x")]) for st, oid in zip(stores, ids)))

            async def attempt(store, oid: ObjectId, head: str | None) -> bool:
                try:
                    await store.cas_head(head, oid.hex())
                except RefConflict:
                    return False
                return True

            won = await asyncio.gather(*(attempt(st, o, expected) for st, o in zip(stores, ids)))
            assert sum(won) == 1
            winner = ids[won.index(True)].hex()
            for store in (stores[0], stores[1]):  # both servers agree on the result
                assert (await store.get_head()).head == winner
            expected = winner
        log = await stores[1].head_log()
        assert [entry.seq for entry in log] == [1, 2, 3, 4, 5]
        # one storage epoch for the cluster: moving between servers re-checks nothing
        assert (await stores[0].get_head()).epoch == (await stores[1].get_head()).epoch


async def test_a_head_move_on_one_server_is_pushed_to_a_device_on_the_other(
    cluster: Cluster,
) -> None:
    add_user(cluster, "eve")
    urls = [cluster.servers[0].base_url, cluster.servers[1].base_url]
    async with clients(urls, "eve", "pushed") as (mover, watcher):
        moving, watching = mover.folder("pushed"), watcher.folder("pushed")
        events = watching.watch()
        first = await asyncio.wait_for(events.__anext__(), 30)
        assert first.head is None
        oid = ObjectId(secrets.token_bytes(32))
        await moving.put_many([(oid, b"y")])
        await moving.cas_head(None, oid.hex())
        pushed = await asyncio.wait_for(events.__anext__(), 30)
        assert pushed.head == oid.hex()
        await events.aclose()  # type: ignore[attr-defined]


async def test_a_quota_holds_across_servers(cluster: Cluster) -> None:
    """Usage comes from the shared index, not a per-process cache: the second server
    knows what the first one stored."""
    add_user(cluster, "quinn", quota=300_000)
    urls = [cluster.servers[0].base_url, cluster.servers[1].base_url]
    async with clients(urls, "quinn", "capped") as (first, second):
        one, two = first.folder("capped"), second.folder("capped")
        await two.put_many([(ObjectId(secrets.token_bytes(32)), b"small")])  # two measures
        await one.put_many([(ObjectId(secrets.token_bytes(32)), os.urandom(200_000))])
        with pytest.raises(QuotaExceeded, match="quota exceeded"):
            await two.put_many([(ObjectId(secrets.token_bytes(32)), os.urandom(200_000))])
