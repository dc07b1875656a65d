"""Failure 4: garbage in the LMDB index no longer stops every sync: it is rebuilt."""

from __future__ import annotations

import logging
import os

import pytest

from chunksync.errors import RollbackError
from chunksync.storage.index import Index
from chunksync.wire import HeadState
from tests.helpers.devices import Device


@pytest.fixture
def pair(memory_pair):
    return memory_pair


def _garble_index(device: Device) -> None:
    device.index.close()
    (device.root / ".chunksync" / "index" / "data.mdb").write_bytes(os.urandom(200_000))
    device.index = Index.open(device.root / ".chunksync" / "index")


async def test_garbage_in_the_index_is_moved_aside_and_local_edits_survive(pair, caplog) -> None:
    a, b, _ = pair
    a.write("shared.txt", "v1")
    a.write("other.txt", "kept")
    await a.sync()
    await b.sync()
    b.write("shared.txt", "b's offline edit")
    b.write("new.txt", "b's offline file")
    with caplog.at_level(logging.WARNING):
        _garble_index(b)
    assert "rebuilt" in caplog.text
    assert list((b.root / ".chunksync").glob("index.broken-*"))
    await b.sync()  # was: "cannot open index … MDB_INVALID" on every sync
    await a.sync()
    for device in (a, b):
        assert device.read("new.txt") == b"b's offline file"
        assert device.read("other.txt") == b"kept"
        versions = {p.read_text() for p in device.root.glob("shared*.txt")}
        assert "b's offline edit" in versions and versions <= {"v1", "b's offline edit"}


async def test_rollback_protection_survives_an_index_rebuild(pair) -> None:
    a, b, store = pair
    a.write("f.txt", "v1")
    await a.sync()
    old = store._head
    a.write("f.txt", "v2")
    await a.sync()
    await b.sync()
    _garble_index(b)
    store._head = HeadState(old.head, old.seq + 5)  # the server replays an older head
    with pytest.raises(RollbackError):
        await b.sync()
    assert b.read("f.txt") == b"v2"
