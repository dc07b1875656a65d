"""A sync running while a prune marks and sweeps loses no object.

The dangerous case is dedup: device B once synced file X, so it "knows" X's chunks are
on the server. X is then deleted and its snapshots forgotten, so a prune sweeps those
chunks — while B, in the middle of a round, writes a new file with X's content and
skips uploading the chunks it knows. The test pauses B's round and the prune at
several points (a hook per store call, as tests/helpers/fault_hooks.py does for the
scanner) and lets the other side run in between; afterwards a fresh device joins and
gets every file byte for byte, the server's ``check`` passes, and every device keeps
syncing — including one whose base snapshot was forgotten and pruned.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from chunksync import wire
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.lifecycle import forget, lifecycle_state, prune
from chunksync.transport.http import HttpClient
from chunksync_server import admin
from chunksync_server.storage import PackObjectStore
from tests.helpers.devices import Device, tree_of
from tests.helpers.server import RunningServer, serve_in_process

X = os.urandom(3 * 1024 * 1024)  # several chunks


class Hooked:
    """A ChunkStore whose calls can be paused: ``pause[name]`` is awaited before
    (``before:NAME``) or after (``after:NAME``) the call the first time it happens."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.points: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}

    def arm(self, point: str) -> tuple[asyncio.Event, asyncio.Event]:
        """(reached, release) for one pause point."""
        self.points[point] = (asyncio.Event(), asyncio.Event())
        return self.points[point]

    async def _at(self, point: str) -> None:
        pair = self.points.pop(point, None)
        if pair is not None:
            pair[0].set()
            await pair[1].wait()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not asyncio.iscoroutinefunction(target):
            return target

        async def call(*args: Any, **kw: Any) -> Any:
            await self._at(f"before:{name}")
            result = await target(*args, **kw)
            await self._at(f"after:{name}")
            return result

        return call


class SlowSweep(PackObjectStore):
    """The server's store, with a pause inside the sweep's delete."""

    gate: threading.Event | None = None
    inside: threading.Event | None = None

    def delete_many(self, ns: str, oids: Any) -> int:
        if self.gate is not None and self.inside is not None:
            self.inside.set()
            self.gate.wait(timeout=30)
        return super().delete_many(ns, oids)


async def _maintenance(srv: RunningServer) -> HttpClient:
    async with aiohttp.ClientSession() as s:
        resp = await s.post(
            srv.url(wire.REAUTH), json={"password": srv.password}, headers=srv.headers()
        )
        token = (await resp.json())["token"]
    return HttpClient(srv.base_url, token)


CLIENTS: list[HttpClient] = []


def _device(tmp: Path, name: str, srv: RunningServer, keys: FolderKeys, token: str) -> Device:
    client = HttpClient(srv.base_url, token)
    CLIENTS.append(client)
    root = tmp / name
    root.mkdir()
    return Device(name, root, Hooked(client.folder("f")), keys)


async def _login(srv: RunningServer, name: str) -> str:
    from tests.helpers.server import login

    async with aiohttp.ClientSession() as s:
        return str((await login(s, srv.base_url, srv.user, device_name=name))["token"])


SCENARIOS = [
    # (who pauses, where) — the other side runs to completion meanwhile
    ("sync", "after:get_head"),  # its round began before the sweep: refused, retried
    ("sync", "after:missing"),  # decided what to upload before the sweep
    ("sync", "before:cas_head"),  # uploaded, about to move the head
    ("prune", "after:start"),  # the head moves between the mark and the sweep
    ("sweep", "inside"),  # a head move while the sweep deletes
]


@pytest.mark.parametrize(("who", "where"), SCENARIOS)
async def test_sync_during_prune_loses_nothing(tmp_path: Path, who: str, where: str) -> None:
    data = tmp_path / "srv"
    store = SlowSweep(data / "objects")
    async with serve_in_process(data, store=store) as srv:
        async with aiohttp.ClientSession() as s:
            assert (
                await s.post(srv.url(wire.FOLDERS), json={"name": "f"}, headers=srv.headers())
            ).status == 201
        keys = FolderKeys(os.urandom(32))
        a = _device(tmp_path, "a", srv, keys, await _login(srv, "a"))
        b = _device(tmp_path, "b", srv, keys, await _login(srv, "b"))
        c = _device(tmp_path, "c", srv, keys, await _login(srv, "c"))
        a.write("x.bin", X)
        a.write("keep.txt", "kept")
        await a.sync()
        await b.sync()  # b knows X's chunks are on the server
        await c.sync()  # c bases on the snapshot holding X, then goes away
        (a.root / "x.bin").unlink()
        await a.sync()
        await b.sync()
        api = await _maintenance(srv)
        pruner = SimpleNamespace(
            config=SimpleNamespace(folder="f"), keys=keys, index=a.index, store=a.store
        )
        state = await lifecycle_state(api, pruner)  # type: ignore[arg-type]
        head = (await a.store.get_head()).head
        # forget every snapshot but the head, overriding device bases (as purge does)
        log = [e.head for e in await a.store.head_log()]
        assert await forget(api, pruner, [h for h in log if h != head], reason="purge")  # type: ignore[arg-type]
        assert state.forgotten == frozenset()

        b.write("copy-of-x.bin", X)  # same content: b's cache says its chunks are stored
        if who == "sync":
            reached, release = b.store.arm(where)
            round_b = asyncio.create_task(b.sync())
            await asyncio.wait_for(reached.wait(), 30)
            await prune(api, pruner)  # type: ignore[arg-type]
            release.set()
            await asyncio.wait_for(round_b, 60)
        elif who == "prune":
            real_request = api.request_json
            paused = asyncio.Event()

            async def request_json(method: str, path: str, **kw: Any) -> Any:
                doc = await real_request(method, path, **kw)
                if path.endswith("/prune") and not paused.is_set():
                    paused.set()
                    await b.sync()  # the head moves after the mark began
                return doc

            api.request_json = request_json  # type: ignore[method-assign]
            await prune(api, pruner)  # type: ignore[arg-type]
        else:
            store.gate, store.inside = threading.Event(), threading.Event()
            sweeping = asyncio.create_task(prune(api, pruner))  # type: ignore[arg-type]
            assert await asyncio.to_thread(store.inside.wait, 30)
            round_b = asyncio.create_task(b.sync())
            await asyncio.sleep(0)  # b's round runs into the sweep; it must not win yet
            for _ in range(30):
                if round_b.done():
                    break
                await asyncio.sleep(0.01)
            store.gate.set()
            await asyncio.wait_for(sweeping, 60)
            store.gate = None
            await asyncio.wait_for(round_b, 60)
        await b.sync()
        await api.aclose()

        # nothing reachable was lost: a fresh device gets everything byte for byte
        fresh = _device(tmp_path, "fresh", srv, keys, await _login(srv, "fresh"))
        await fresh.sync()
        assert fresh.read("copy-of-x.bin") == X
        assert tree_of(fresh.root, mtimes=False) == tree_of(b.root, mtimes=False)
        # the device whose base was forgotten and pruned still syncs, both ways
        c.write("from-c.txt", "c was away during the prune")
        await c.sync()
        assert not (c.root / "x.bin").exists() and c.read("copy-of-x.bin") == X
        await a.sync()
        assert a.read("from-c.txt") == b"c was away during the prune"
        for d in (a, b, c, fresh):
            d.close()
        while CLIENTS:
            await CLIENTS.pop().aclose()
    assert admin.check(data) == []


async def test_a_device_that_knew_swept_chunks_uploads_them_again(tmp_path: Path) -> None:
    """After a prune the storage epoch changes, and a device drops its cache of known
    ids for good, not only for one round: a file it writes later with content the prune
    swept is uploaded again, not skipped as "already on the server"."""
    data = tmp_path / "srv"
    async with serve_in_process(data) as srv:
        async with aiohttp.ClientSession() as s:
            created = await s.post(srv.url(wire.FOLDERS), json={"name": "f"}, headers=srv.headers())
            assert created.status == 201
        keys = FolderKeys(os.urandom(32))
        a = _device(tmp_path, "a", srv, keys, await _login(srv, "a"))
        b = _device(tmp_path, "b", srv, keys, await _login(srv, "b"))
        await a.sync()
        b.write("y.bin", X)
        await b.sync()  # b uploaded y's chunks: its cache says they are on the server
        (b.root / "y.bin").unlink()
        await b.sync()
        await a.sync()
        api = await _maintenance(srv)
        pruner = SimpleNamespace(
            config=SimpleNamespace(folder="f"), keys=keys, index=a.index, store=a.store
        )
        head = (await a.store.get_head()).head
        log = [e.head for e in await a.store.head_log()]
        await forget(api, pruner, [h for h in log if h != head], reason="purge")  # type: ignore[arg-type]
        assert (await prune(api, pruner))["deleted"] > 0  # type: ignore[arg-type]
        await api.aclose()
        await b.sync()  # a round under the new epoch: the cache goes
        b.write("y-again.bin", X)
        await b.sync()  # a later round, trusting its (now empty) cache again
        fresh = _device(tmp_path, "fresh", srv, keys, await _login(srv, "fresh"))
        await fresh.sync()
        assert fresh.read("y-again.bin") == X
        for d in (a, b, fresh):
            d.close()
        while CLIENTS:
            await CLIENTS.pop().aclose()
    assert admin.check(data) == []


async def test_prune_keeps_every_part_of_a_split_directory(tmp_path: Path) -> None:
    """A directory large enough to be stored in parts (chunksync.treeparts): the mark
    must reach the parts themselves, not only the entries the assembled listing shows,
    or the sweep deletes them and no device can read the directory again."""
    data = tmp_path / "srv"
    async with serve_in_process(data) as srv:
        async with aiohttp.ClientSession() as s:
            created = await s.post(srv.url(wire.FOLDERS), json={"name": "f"}, headers=srv.headers())
            assert created.status == 201
        keys = FolderKeys(os.urandom(32))
        a = _device(tmp_path, "a", srv, keys, await _login(srv, "a"))
        files = {f"big/entry-{n:04d}-with-a-long-name.txt": b"%d" % n for n in range(600)}
        for name, content in files.items():
            a.write(name, content)
        await a.sync()
        head = (await a.store.get_head()).head
        a.write("big/entry-0000-with-a-long-name.txt", b"changed")
        await a.sync()
        api = await _maintenance(srv)
        pruner = SimpleNamespace(
            config=SimpleNamespace(folder="f"), keys=keys, index=a.index, store=a.store
        )
        await forget(api, pruner, [head], reason="forget")  # type: ignore[arg-type]
        assert (await prune(api, pruner))["deleted"] > 0  # type: ignore[arg-type]
        await api.aclose()
        fresh = _device(tmp_path, "fresh", srv, keys, await _login(srv, "fresh"))
        await fresh.sync()
        files["big/entry-0000-with-a-long-name.txt"] = b"changed"
        assert all(fresh.read(name) == content for name, content in files.items())
        for d in (a, fresh):
            d.close()
        while CLIENTS:
            await CLIENTS.pop().aclose()
    assert admin.check(data) == []
