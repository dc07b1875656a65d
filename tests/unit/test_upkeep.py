"""Index upkeep pieces on a real small LMDB index: journal trimming, ``known`` trimming,
pins of live and dead processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chunksync.objects import ObjectId
from chunksync.storage.index import Index
from chunksync.storage.pins import pinned, pins_dir, read_pins
from chunksync.storage.upkeep import IndexKeeper, db_bytes


def oid(n: int) -> ObjectId:
    return ObjectId(n.to_bytes(32, "big"))


def test_the_journal_keeps_its_latest_entries(tmp_path: Path) -> None:
    with Index.open(tmp_path / "index", map_size=1 << 20) as index:
        with index.write() as w:
            for i in range(130):
                w.append_event({"path": f"f{i}", "change": "added", "time_ns": i, "device": "a"})
        keeper = IndexKeeper(index, max_events=100)
        keeper.after_round()
        seqs = [seq for seq, _ in index.iter_events()]
        assert seqs == list(range(31, 131))
        with index.write() as w:  # numbering goes on after a trim
            assert (
                w.append_event({"path": "next", "change": "added", "time_ns": 0, "device": "a"})
                == 131
            )
        keeper.after_round()  # within 10% over: left alone until the next step
        assert db_bytes(index, "events")[0] == 101


def test_known_ids_of_nothing_kept_are_forgotten(tmp_path: Path) -> None:
    with Index.open(tmp_path / "index", map_size=1 << 20) as index:
        with index.write() as w:
            w.add_known([oid(i) for i in range(50)])
        report = IndexKeeper(index, budget=0).collect()
        assert report is not None and report.known_dropped == 50
        assert not index.known(oid(3))


def test_pins_of_live_processes_count_and_dead_ones_are_removed(tmp_path: Path) -> None:
    with Index.open(tmp_path / "index", map_size=1 << 20) as index:
        with pinned(index, [oid(1), None]) as pin:
            pin.add([oid(2), oid(1)])
            assert read_pins(index.path) == {oid(1), oid(2)}
            assert pin.roots == [oid(1), oid(2)]
        assert read_pins(index.path) == frozenset()
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        stale = pins_dir(index.path) / f"{int(dead.stdout)}-abc.pin"
        stale.write_text(oid(9).hex() + "\n")
        (pins_dir(index.path) / f"{os.getpid()}-junk.pin").write_text("not an id\n")
        assert read_pins(index.path) == frozenset()
        assert not stale.exists()
