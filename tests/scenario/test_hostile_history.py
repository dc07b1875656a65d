"""A server that controls its answers cannot rewrite history into local deletions.

Device ``a`` talks to a real chunk server through a proxy that plays the hostile server:
it rewrites the head (and head log) that ``a`` is shown. Device ``b`` talks to the server
directly. In every case ``a`` refuses before anything is merged, and no local file
changes or vanishes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import seal
from chunksync.errors import IntegrityError, RollbackError
from chunksync.history import list_snapshots
from chunksync.objects import Commit, ObjectKind, decode_object
from chunksync.sync.objects_io import ObjectReader
from chunksync.transport.http import HttpClient
from tests.helpers.devices import Device, tree_of
from tests.helpers.faulty_proxy import FaultyProxy, Response
from tests.helpers.server import login, serve_in_process

HEAD_GET = "GET /v1/folders/docs/head HTTP"
LOG_GET = "GET /v1/folders/docs/log?"


@pytest_asyncio.fixture
async def world(
    tmp_path: Path, folder_keys: FolderKeys
) -> AsyncIterator[tuple[Device, Device, FaultyProxy]]:
    async with serve_in_process(tmp_path / "server") as srv:
        async with aiohttp.ClientSession() as session:
            await session.post(srv.url("/v1/folders"), json={"name": "docs"}, headers=srv.headers())
            creds_a = await login(session, srv.base_url, srv.user, device_name="a")
            creds_b = await login(session, srv.base_url, srv.user, device_name="b")
        port = int(srv.base_url.rsplit(":", 1)[1])
        async with FaultyProxy("127.0.0.1", port) as proxy:
            client_a = HttpClient(proxy.url, creds_a["token"])
            client_b = HttpClient(srv.base_url, creds_b["token"])
            a = Device("a", tmp_path / "a", client_a.folder("docs"), folder_keys)
            b = Device("b", tmp_path / "b", client_b.folder("docs"), folder_keys)
            try:
                yield a, b, proxy
            finally:
                a.close()
                b.close()
                await client_a.aclose()
                await client_b.aclose()


def show_head(proxy: FaultyProxy, head: str, seq: int) -> None:
    """From now on, the hostile server shows device a this head."""
    body = json.dumps({"head": head, "seq": seq}).encode()
    proxy.rewrite(lambda r: Response(200, r.headers, body), match=HEAD_GET, count=1000)


def commit_of(device: Device, head: str) -> Commit:
    found = device.index.get_object(bytes.fromhex(head))
    assert found is not None
    commit = decode_object(ObjectKind.COMMIT, found[1])
    assert isinstance(commit, Commit)
    return commit


async def upload_commit(device: Device, keys: FolderKeys, commit: Commit) -> str:
    encoded = commit.encode()
    oid = keys.meta_id(encoded)
    await device.store.put_many([(oid, seal(keys, ObjectKind.COMMIT, oid, encoded))])
    return oid.hex()


async def history(a: Device, b: Device) -> list[str]:
    """Four snapshots: shared.txt, then edits by both devices; a holds mine.txt last."""
    heads = []
    a.write("shared.txt", "v1")
    heads.append((await a.sync()).head)
    await b.sync()
    b.write("from-b.txt", "b's file")
    heads.append((await b.sync()).head)
    await a.sync()
    a.write("shared.txt", "v2")
    heads.append((await a.sync()).head)
    a.write("mine.txt", "only a has synced this")
    heads.append((await a.sync()).head)
    return heads


async def test_forked_head_deletes_no_synced_local_file(world, folder_keys) -> None:
    """Failure 1: the server lets a commit on top of an old head replace a's head."""
    a, b, proxy = world
    heads = await history(a, b)
    before = tree_of(a.root)
    old = commit_of(a, heads[1])
    # b's commit made on top of an old head, with sequence numbers that still increase
    forked = Commit(
        old.tree, (bytes.fromhex(heads[1]),), old.seq + 5, "b", "alice", 1, {"modified": 1}
    )
    fork_id = await upload_commit(b, folder_keys, forked)
    show_head(proxy, fork_id, 99)
    with pytest.raises(RollbackError, match="forked") as caught:
        await a.sync()
    assert "--accept-server-history" in str(caught.value) and str(a.root) in str(caught.value)
    assert tree_of(a.root) == before
    assert (a.root / "mine.txt").read_text() == "only a has synced this"


@pytest.mark.parametrize("back", [1, 2, 3])
async def test_rollback_to_any_earlier_head_changes_nothing(world, back) -> None:
    a, b, proxy = world
    heads = await history(a, b)
    before = tree_of(a.root)
    show_head(proxy, heads[-1 - back], 1000)  # a higher server sequence does not help it
    with pytest.raises(RollbackError, match="rolled back"):
        await a.sync()
    assert tree_of(a.root) == before


async def test_old_head_replayed_to_one_device_changes_nothing(world) -> None:
    a, b, proxy = world
    heads = await history(a, b)
    await b.sync()
    b.write("later.txt", "b moves on")
    await b.sync()
    before = tree_of(a.root)
    show_head(proxy, heads[2], 5)  # a alone is shown an old head
    with pytest.raises(RollbackError):
        await a.sync()
    assert tree_of(a.root) == before
    proxy.clear()
    await a.sync()  # the honest head, once shown again, is accepted
    assert (a.root / "later.txt").read_text() == "b moves on"


async def test_head_from_another_folder_changes_nothing(world, other_folder_keys) -> None:
    a, b, proxy = world
    await history(a, b)
    before = tree_of(a.root)
    alien = Commit(bytes(32), (), 50, "mallory", "mallory", 1)
    alien_id = await upload_commit(
        b, other_folder_keys, alien
    )  # sealed under another folder's keys
    show_head(proxy, alien_id, 50)
    with pytest.raises(IntegrityError):
        await a.sync()
    assert tree_of(a.root) == before


def _swap_heads(resp: Response) -> Response:
    doc = resp.json()
    entries = doc["entries"]
    entries[1]["head"], entries[2]["head"] = entries[2]["head"], entries[1]["head"]
    return resp.with_body(json.dumps(doc).encode())


async def test_reordered_log_is_refused(world) -> None:
    a, b, proxy = world
    await history(a, b)
    before = tree_of(a.root)
    proxy.rewrite(_swap_heads, match=LOG_GET)
    reader = ObjectReader(a.keys, a.index, a.store)
    with pytest.raises(IntegrityError, match="not one history"):
        await list_snapshots(reader)
    assert len(await list_snapshots(reader)) == 4  # the honest log passes
    await a.sync()
    assert tree_of(a.root) == before


async def test_accepting_a_restored_server_history_keeps_every_local_file(
    world, folder_keys
) -> None:
    """The way forward after a refusal: merge without a base, so nothing is deleted."""
    a, b, proxy = world
    heads = await history(a, b)
    old = commit_of(a, heads[1])
    forked = Commit(old.tree, (bytes.fromhex(heads[1]),), old.seq + 5, "b", "alice", 1)
    fork_id = await upload_commit(b, folder_keys, forked)
    show_head(proxy, fork_id, 99)
    with pytest.raises(RollbackError):
        await a.sync()
    proxy.clear()
    # the server "restored from a backup" really shows the fork now
    await b.store.cas_head(heads[-1], fork_id)
    await a.sync(accept_server_history=True)
    assert (a.root / "mine.txt").read_text() == "only a has synced this"
    versions = {p.read_text() for p in a.root.glob("shared*.txt")}
    assert versions == {"v1", "v2"}  # the server's keeps the name, a's is kept beside it
    await b.sync()
    assert tree_of(b.root, mtimes=False) == tree_of(a.root, mtimes=False)
