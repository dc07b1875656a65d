"""Objects the server lost are re-uploaded by an ordinary sync of a device that has them."""

from __future__ import annotations

import os

import pytest

from chunksync.errors import ObjectNotFound
from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.devices import Device, tree_of


@pytest.fixture
def store() -> MemoryChunkStore:
    return MemoryChunkStore()


@pytest.fixture
def devices(tmp_path, store, folder_keys):
    made = [Device(n, tmp_path / n, store, folder_keys) for n in ("a", "b", "c")]
    yield made
    for d in made:
        d.close()


def lose_everything_but_the_head(store: MemoryChunkStore) -> int:
    """The server's index lost its last writes: every object but the head commit is gone."""
    head = bytes.fromhex(store._head.head or "")
    lost = [oid for oid in store._blobs if oid != head]
    for oid in lost:
        del store._blobs[oid]
    store.epoch = "restarted"  # as a real server's is after the crash
    return len(lost)


async def test_objects_the_server_lost_are_reuploaded_by_an_ordinary_sync(devices, store) -> None:
    a, b, _ = devices
    a.write("docs/report.txt", "quarterly numbers")
    a.write("photo.bin", os.urandom(300_000))
    await a.sync()
    lost = lose_everything_but_the_head(store)
    with pytest.raises(ObjectNotFound):
        await b.sync()  # nobody can join a folder whose objects are gone
    result = await a.sync()  # "in sync" by its cache, but it checks the server's copy
    assert 0 < result.healed.missing <= lost and result.healed.unrecoverable == 0
    await b.sync()
    assert tree_of(b.root) == tree_of(a.root)


async def test_a_device_heals_what_it_holds_and_counts_what_it_cannot(devices, store) -> None:
    a, b, c = devices
    a.write("one.txt", "one")
    await a.sync()
    await b.sync()
    (b.root / "one.txt").write_text("edited on b before the loss was noticed")
    lost = lose_everything_but_the_head(store)
    result = await b.sync()
    # b holds the trees and the manifest, not the old chunk: its file has changed since
    assert 0 < result.healed.missing <= lost and result.healed.unrecoverable == 1
    assert result.pushed
    await c.sync()
    assert c.read("one.txt") == b"edited on b before the loss was noticed"


async def test_known_cache_is_not_trusted_for_a_new_head_after_a_loss(devices, store) -> None:
    """A revert to content the cache calls "known on the server" must re-upload it
    when the server lost it, or the head would name missing chunks."""
    a, _, c = devices
    engine = a.engine()  # one long-running engine: its cache is warm
    a.write("f.txt", "version one")
    await engine.sync()
    a.write("f.txt", "version two")
    await engine.sync()
    for oid in list(store._blobs):  # version one's objects are lost
        if a.index.known(oid) and oid != bytes.fromhex(store._head.head or ""):
            del store._blobs[oid]
    a.write("f.txt", "version one")
    store.epoch = "restarted"
    await engine.sync()
    await c.sync()
    assert c.read("f.txt") == b"version one"
