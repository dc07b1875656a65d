"""Devices converge through a real chunk server on 127.0.0.1 (in-process aiohttp)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from chunksync.history import list_snapshots, restore
from chunksync.sync.objects_io import ObjectReader
from chunksync.transport.http import HttpClient
from tests.helpers.devices import Device, tree_of
from tests.helpers.server import RunningServer, login, serve_in_process


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serve_in_process(tmp_path / "server") as srv:
        async with aiohttp.ClientSession() as session:
            await session.post(srv.url("/v1/folders"), json={"name": "docs"}, headers=srv.headers())
        yield srv


@pytest_asyncio.fixture
async def make_device(tmp_path: Path, server: RunningServer, folder_keys):
    made: list[tuple[Device, HttpClient]] = []

    async def make(name: str) -> Device:
        async with aiohttp.ClientSession() as session:
            creds = await login(session, server.base_url, server.user, device_name=name)
        client = HttpClient(server.base_url, creds["token"])
        device = Device(name, tmp_path / name, client.folder("docs"), folder_keys)
        made.append((device, client))
        return device

    yield make
    for device, client in made:
        device.close()
        await client.aclose()


async def test_two_devices_full_round_trip(make_device) -> None:
    a, b = await make_device("laptop"), await make_device("desktop")
    a.write("notes/todo.txt", "buy milk")
    a.write("bin/tool.sh", "#!/bin/sh\n", executable=True)
    a.write("photos/cat.jpg", os.urandom(300_000))
    (a.root / "empty-dir").mkdir()
    os.symlink("notes/todo.txt", a.root / "todo-link")
    await a.sync()
    await b.sync()
    assert tree_of(a.root) == tree_of(b.root)
    history = [tree_of(a.root)]

    # b: edit, delete, rename a file and a directory, new empty dir
    b.write("notes/todo.txt", "buy milk and bread")
    (b.root / "bin" / "tool.sh").unlink()
    os.rename(b.root / "photos", b.root / "pictures")
    (b.root / "more-empty").mkdir()
    await b.sync()
    await a.sync()
    assert tree_of(a.root) == tree_of(b.root)
    history.append(tree_of(a.root))

    # a: exec bit change, symlink retarget, directory delete
    (a.root / "pictures" / "cat.jpg").chmod(0o755)
    (a.root / "todo-link").unlink()
    os.symlink("pictures/cat.jpg", a.root / "todo-link")
    shutil.rmtree(a.root / "empty-dir")
    await a.sync()
    await b.sync()
    assert tree_of(a.root) == tree_of(b.root)
    history.append(tree_of(a.root))
    assert not (await a.sync()).changed and not (await b.sync()).changed

    # the log names each snapshot's device, and every snapshot restores byte for byte
    reader = ObjectReader(a.keys, a.index, a.store)
    snaps = await list_snapshots(reader)
    assert [s.commit.device for s in snaps] == ["laptop", "desktop", "laptop"]
    for i, (snap, expected) in enumerate(zip(snaps, history, strict=True)):
        out = a.root.parent / f"restore-{i}"
        await restore(reader, snap, [], out)
        assert tree_of(out) == expected


async def test_three_devices_concurrent_edit_over_http(make_device) -> None:
    devs = [await make_device(n) for n in ("x", "y", "z")]
    devs[0].write("shared.md", "v0")
    for d in devs:
        await d.sync()
    for d in devs:
        d.write("shared.md", f"edit by {d.name}")
    for _ in range(2):
        for d in devs:
            await d.sync()
    trees = [tree_of(d.root) for d in devs]
    assert trees[0] == trees[1] == trees[2]
    assert sorted(v[1] for v in trees[0].values()) == [b"edit by x", b"edit by y", b"edit by z"]
    for d in devs:
        assert not (await d.sync()).changed


@pytest.mark.parametrize("n_files", [300])
async def test_join_of_a_populated_folder_matches_everything(make_device, n_files) -> None:
    a = await make_device("first")
    for i in range(n_files):
        a.write(f"d{i % 7}/sub{i % 3}/f{i}.txt", f"file {i} " * (i % 50))
    await a.sync()
    b = await make_device("second")
    result = await b.sync()
    assert result.applied == n_files
    assert tree_of(a.root) == tree_of(b.root)


async def test_flaky_network_mid_sync_loses_nothing(
    tmp_path: Path, server: RunningServer, folder_keys
) -> None:
    """Uploads and downloads cut half-way, a dropped head update and a 503: the sync
    retries what is safe to retry, and the devices still converge byte for byte."""
    from yarl import URL

    from tests.helpers.faulty_proxy import FaultyProxy

    url = URL(server.base_url)
    async with FaultyProxy(url.host or "127.0.0.1", url.port or 0) as proxy:
        clients: list[HttpClient] = []
        devices = []
        for name in ("flaky-a", "flaky-b"):
            async with aiohttp.ClientSession() as session:
                creds = await login(session, server.base_url, server.user, device_name=name)
            client = HttpClient(proxy.url, creds["token"])
            clients.append(client)
            devices.append(Device(name, tmp_path / name, client.folder("docs"), folder_keys))
        a, b = devices
        try:
            a.write("big.bin", os.urandom(3 << 20))
            a.write("notes/small.txt", "small")
            proxy.cut_request(100_000, match="/objects HTTP", count=2)
            proxy.respond(503, b'{"error": "busy"}', match="/objects/missing", count=1)
            await a.sync()
            uploads = [
                r for r in proxy.requests if r.startswith("POST /v1/folders/docs/objects HTTP")
            ]
            assert len(uploads) >= 3  # two cut off, then retried through
            assert sum("/objects/missing" in r for r in proxy.requests) >= 2
            proxy.cut_response(50_000, match="/objects/fetch", count=2)
            proxy.drop(match="GET /v1/folders/docs/head", count=1)
            await b.sync()
            assert sum("/objects/fetch" in r for r in proxy.requests) >= 3
            assert tree_of(a.root) == tree_of(b.root)
            assert not (await a.sync()).changed and not (await b.sync()).changed
        finally:
            for d in devices:
                d.close()
            for c in clients:
                await c.aclose()
