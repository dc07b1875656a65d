"""An index that opens but whose records are damaged is rebuilt during the sync that
finds it: one warning, nothing lost, the folder converges, the rollback guard holds.

Each case writes one bad record with LMDB directly (garbage values, a cut-short value,
a key of the wrong length, a record of another shape, a cached object that is not what
its id says), or damages an LMDB page of the file, so that ``Index.open`` succeeds and
only a later read fails.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

import lmdb
import pytest

from chunksync.errors import IndexDamaged, RollbackError
from chunksync.objects import ObjectKind
from chunksync.storage.index import Index
from chunksync.wire import HeadState
from tests.helpers.devices import Device, tree_of

Poke = Callable[[lmdb.Transaction, Callable[[str], object]], None]


@pytest.fixture
def pair(memory_pair):
    return memory_pair


def _index_path(device: Device):
    return device.root / ".chunksync" / "index"


def _poke(device: Device, poke: Poke) -> None:
    """Change records of ``device``'s index behind its back, with LMDB itself."""
    device.index.close()
    env = lmdb.open(os.fspath(_index_path(device)), max_dbs=10, subdir=True)
    with env.begin(write=True) as txn:
        poke(txn, lambda name: env.open_db(name.encode(), txn=txn))
    env.close()
    device.index = Index.open(_index_path(device))  # opens fine: the damage is inside


def _put(db: str, key: bytes, value: bytes) -> Poke:
    return lambda txn, dbs: txn.put(key, value, db=dbs(db))


def _cut_short(db: str, key: bytes) -> Poke:
    def poke(txn: lmdb.Transaction, dbs: Callable[[str], object]) -> None:
        txn.put(key, txn.get(key, db=dbs(db))[:9], db=dbs(db))

    return poke


def _swap_cached_tree(txn: lmdb.Transaction, dbs: Callable[[str], object]) -> None:
    """The cached root tree replaced by another, valid-looking tree."""
    root = txn.get(b"base_root", db=dbs("meta"))
    txn.put(root, bytes([ObjectKind.TREE]) + b'{"e":[],"t":"tree"}', db=dbs("objects"))


DAMAGE = {
    "stat value garbage": _put("stat", b"other.txt", os.urandom(61)),
    "stat value cut short": _cut_short("stat", b"other.txt"),
    "stat key of the wrong path": _put("stat", b"zz", b"\x00\x09other.txt" + bytes(69)),
    "base is not a commit id": _put("meta", b"base", b"\xffnot a commit id"),
    "high_seq is not a number": _put("meta", b"high_seq", b"\x00\x01"),
    "base_root cut short": _cut_short("meta", b"base_root"),
    "event key of the wrong length": _put("events", b"\xff\xff\xff", b"{}"),
    "dirtree value garbage": _put("dirtree", b"\x00", os.urandom(5)),
    "cached tree does not match its id": _swap_cached_tree,
}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def _synced_pair_with_offline_edits(pair) -> tuple[Device, Device]:
    a, b, _ = pair
    a.write("shared.txt", "v1")
    a.write("other.txt", "kept")
    a.write("sub/deep.txt", "deep")
    await a.sync()
    await b.sync()
    b.write("shared.txt", "b's offline edit")
    b.write("new.txt", "b's offline file")
    return a, b


def _assert_nothing_lost(a: Device, b: Device) -> None:
    assert tree_of(a.root, mtimes=False) == tree_of(b.root, mtimes=False)
    for device in (a, b):
        assert device.read("new.txt") == b"b's offline file"
        assert device.read("other.txt") == b"kept"
        assert device.read("sub/deep.txt") == b"deep"
        versions = {p.read_text() for p in device.root.glob("shared*.txt")}
        assert "b's offline edit" in versions and versions <= {"v1", "b's offline edit"}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
async def test_a_damaged_record_is_rebuilt_during_the_sync_that_finds_it(
    pair, caplog, damage
) -> None:
    a, b = await _synced_pair_with_offline_edits(pair)
    _poke(b, DAMAGE[damage])
    with caplog.at_level(logging.WARNING):
        await b.sync()  # was: struct.error / KeyError / a fork refused, on every sync
    assert len(_warnings(caplog)) == 1 and "rebuilt" in _warnings(caplog)[0]
    assert list((b.root / ".chunksync").glob("index.broken-*"))
    assert not (b.root / ".chunksync" / "index.damaged").exists()
    await a.sync()
    await b.sync()
    _assert_nothing_lost(a, b)
    assert len(_warnings(caplog)) == 1


def _damage_pages(device: Device, needle: bytes) -> None:
    """Garble the page header of every LMDB page holding ``needle``."""
    device.index.close()
    data = _index_path(device) / "data.mdb"
    raw = bytearray(data.read_bytes())
    pages = [n for n in range(2, len(raw) // 4096) if needle in raw[n * 4096 : (n + 1) * 4096]]
    assert pages
    for n in pages:
        raw[n * 4096 + 10 : n * 4096 + 12] = b"\xff\xff"  # the page's flags
    data.write_bytes(bytes(raw))
    device.index = Index.open(_index_path(device))


async def test_an_lmdb_error_inside_a_read_is_rebuilt_too(pair, caplog) -> None:
    a, b = await _synced_pair_with_offline_edits(pair)
    _damage_pages(b, b"other.txt")
    with caplog.at_level(logging.WARNING):
        await b.sync()
    assert len(_warnings(caplog)) == 1 and "rebuilt" in _warnings(caplog)[0]
    await a.sync()
    await b.sync()
    _assert_nothing_lost(a, b)


async def test_rollback_protection_holds_through_a_rebuild_mid_sync(pair) -> None:
    a, b, store = pair
    a.write("f.txt", "v1")
    await a.sync()
    old = store._head
    a.write("f.txt", "v2")
    await a.sync()
    await b.sync()
    (b.root / ".chunksync" / "trust").unlink()  # a folder synced before the trust file existed
    _poke(b, _put("meta", b"base_root", b"cut"))
    store._head = HeadState(old.head, old.seq + 5)  # the server replays an older head
    with pytest.raises(RollbackError):
        await b.sync()
    assert b.read("f.txt") == b"v2"


async def test_a_record_of_another_shape_fails_the_command_once_and_the_next_sync_rebuilds(
    pair, caplog
) -> None:
    """A reader outside a sync (``log --events``, ``status``) fails in one line and
    marks the index; the next sync opens it rebuilt, with one warning."""
    a, b = await _synced_pair_with_offline_edits(pair)
    event = json.dumps({"something": "else"}).encode()
    _poke(b, _put("events", (1).to_bytes(8, "big"), event))
    with pytest.raises(IndexDamaged, match="rebuilt on the next sync") as raised:
        list(b.index.iter_events())
    assert "\n" not in raised.value.message
    assert (b.root / ".chunksync" / "index.damaged").exists()
    b.index.close()
    with caplog.at_level(logging.WARNING):
        b.index = Index.open(_index_path(b))  # what the next sync does first
        await b.sync()
    assert len(_warnings(caplog)) == 1 and "rebuilt" in _warnings(caplog)[0]
    assert all("something" not in e for _, e in b.index.iter_events())
    await a.sync()
    await b.sync()
    _assert_nothing_lost(a, b)
