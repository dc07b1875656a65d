"""Crash safety of PackObjectStore: a writer killed with SIGKILL loses nothing it reported.

A child process puts deterministic batches in a loop and prints each batch number once
``put_many`` has returned (the durability promise). The test kills it mid-write, reopens
the store and checks: every reported batch is fully readable, no batch is partly visible,
the sweep cut every pack back to its indexed extents, ``check`` is clean and the same
batches can be put again. Corruption at rest is then shown to be found by ``check``.
"""

from __future__ import annotations

import inspect
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chunksync_server.storage import PackObjectStore
from chunksync_server.storage.packs import INDEX_FILE

REPO = Path(__file__).resolve().parents[2]
NS = "f1"
PACK_SIZE = 6 * 1024 * 1024


def batch(k: int) -> list[tuple[bytes, bytes]]:
    """Batch ``k`` of the child's sequence: 24 objects of 1..128 KiB (about 1.5 MiB)."""
    rng = random.Random(k)
    return [(rng.randbytes(32), rng.randbytes(rng.randint(1, 128 * 1024))) for _ in range(24)]


CHILD = f"""
import os, random, signal, sys
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from chunksync_server.storage import PackObjectStore

{inspect.getsource(batch)}

hold = int(sys.argv[2])
synced = os.fdatasync


def fdatasync(fd):  # optionally freeze between the pack sync and the index commit
    synced(fd)
    if 0 <= hold <= k:
        print("appended", flush=True)
        signal.pause()


os.fdatasync = fdatasync
store = PackObjectStore(Path(sys.argv[1]), pack_size={PACK_SIZE})
k, items = 0, batch(0)
while True:
    store.put_many({NS!r}, items)
    items = batch(k + 1)  # made before reporting, so the kill lands inside put_many
    print(k, flush=True)
    k += 1
"""


def run_child_until(root: Path, reported: int, *, hold: bool = False) -> int:
    """Start the writer, SIGKILL it after ``reported`` batches; return how many it reported.

    With ``hold`` the writer freezes inside the next put_many, after appending and
    syncing its blobs but before indexing them, and is killed there.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(reported if hold else -1)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    done = 0
    try:
        for line in child.stdout:
            if line.strip() == "appended":
                break
            assert int(line) == done
            done += 1
            if done == reported and not hold:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert done == reported, "the writer died before reporting enough batches"
    return done


def indexed_ends(root: Path) -> dict[int, int]:
    """pack number -> end of its last indexed object, read straight from the index."""
    with sqlite3.connect(root / INDEX_FILE) as db:
        rows = db.execute(
            "SELECT pack, MAX(offset + length) FROM objects WHERE ns = ? GROUP BY pack", (NS,)
        ).fetchall()
    db.close()
    return dict(rows)


@pytest.mark.parametrize(("kill_after", "hold"), [(1, False), (6, False), (4, True)])
def test_sigkill_mid_write_loses_nothing_reported(
    tmp_path: Path, kill_after: int, hold: bool
) -> None:
    root = tmp_path / "objects"
    reported = run_child_until(root, kill_after, hold=hold)
    if hold:  # killed between append and commit: the pack has an unindexed tail
        ends = indexed_ends(root)
        packs = list((root / NS / "packs").glob("*.pack"))
        assert sum(p.stat().st_size - ends.get(int(p.stem), 0) for p in packs) > 0
    store = PackObjectStore(root, pack_size=PACK_SIZE)
    try:
        for k in range(reported):  # every reported batch is complete and exact
            items = batch(k)
            assert store.get_many(NS, [oid for oid, _ in items]) == dict(items)
        for k in range(reported, reported + 2):  # later batches: all or nothing
            items = batch(k)
            visible = store.get_many(NS, [oid for oid, _ in items])
            assert len(visible) in (0, len(items))
            assert all(blob == dict(items)[oid] for oid, blob in visible.items())
        listed = set(store.list(NS))
        expected = {oid for k in range(reported + 2) for oid, _ in batch(k)}
        assert listed <= expected
        ends = indexed_ends(root)
        for pack in (root / NS / "packs").glob("*.pack"):
            assert pack.stat().st_size == ends.get(int(pack.stem), 0), f"{pack.name} not swept"
        assert store.check() == []
        for k in range(reported + 2):  # putting the same batches again succeeds
            store.put_many(NS, batch(k))
        all_items = dict(item for k in range(reported + 2) for item in batch(k))
        assert store.get_many(NS, list(all_items)) == all_items
        assert store.check() == []
    finally:
        store.close()


def test_open_sweeps_unindexed_tails_and_temp_files(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = PackObjectStore(root)
    items = batch(0)
    store.put_many(NS, items)
    store.close()
    pack = root / NS / "packs" / "0.pack"
    size = pack.stat().st_size
    with open(pack, "ab") as tail:  # what a crash between append and commit leaves
        tail.write(os.urandom(5000))
    stray = root / NS / "packs" / "0.pack.tmp"
    stray.write_bytes(b"half")
    reopened = PackObjectStore(root)
    try:
        assert pack.stat().st_size == size
        assert not stray.exists()
        more = batch(1)
        assert reopened.put_many(NS, more) == len(more)
        assert reopened.get_many(NS, [oid for oid, _ in items + more]) == dict(items + more)
        assert reopened.check() == []
    finally:
        reopened.close()


def test_check_reports_a_corrupted_object_by_id(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = PackObjectStore(root)
    items = batch(2)
    store.put_many(NS, items)
    store.close()
    victim_id, victim = items[5]
    pack = root / NS / "packs" / "0.pack"
    data = bytearray(pack.read_bytes())
    at = data.find(victim) + len(victim) // 2
    data[at] ^= 0x01
    pack.write_bytes(bytes(data))
    reopened = PackObjectStore(root)
    try:
        problems = reopened.check()
        assert len(problems) == 1
        assert victim_id.hex() in problems[0] and "digest mismatch" in problems[0]
    finally:
        reopened.close()


def test_check_reports_objects_lost_from_a_truncated_pack(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = PackObjectStore(root)
    items = batch(3)
    store.put_many(NS, items)
    store.close()
    pack = root / NS / "packs" / "0.pack"
    last_id, last = items[-1]
    os.truncate(pack, pack.stat().st_size - len(last) // 2)
    reopened = PackObjectStore(root)
    try:
        problems = reopened.check(NS)
        assert len(problems) == 1
        assert last_id.hex() in problems[0] and "unreadable" in problems[0]
    finally:
        reopened.close()
