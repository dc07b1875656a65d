"""Failed items (chunksync/failed.py): what a scan re-judges, keeps and drops; and the
settle rule (chunksync/settle.py) that holds back files still being written."""

from __future__ import annotations

import os
from pathlib import Path

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.failed import FailedItem, load, merge, record
from chunksync.failed_text import failed_lines
from chunksync.scanner import scan
from chunksync.settle import Settle, busy_for
from chunksync.storage.index import Index
from tests.helpers.corpus import write_tree

S = 1_000_000_000


def item(path: str, kind: str = "unreadable", since: int = 1) -> FailedItem:
    return FailedItem(path, kind, "why", "hint", since)


def test_a_listed_directory_is_re_judged_others_are_kept_and_gone_ones_dropped() -> None:
    previous = [item("a/x"), item("b/y"), item("gone/z"), item("top")]
    scanned = [FailedItem("a/new", "nfc-twin", "twin", "", 50)]
    out = merge(previous, scanned, listed={"a", ""}, present=["a", "b"])
    # a/x was fixed (a listed again, no item), b/y kept (b not listed), gone/z dropped
    # (its directory is gone), top re-judged with the root
    assert [(i.path, i.kind) for i in out] == [("a/new", "nfc-twin"), ("b/y", "unreadable")]


def test_since_survives_re_judging_and_remote_items_are_replaced_per_round() -> None:
    previous = [item("a/x", since=7), item("far", "unwritable-here", since=3)]
    again = [FailedItem("a/x", "unreadable", "why", "hint", 99)]
    out = merge(previous, again, listed={"a"}, present=["a"], remote=None)
    assert {(i.path, i.since) for i in out} == {("a/x", 7), ("far", 3)}  # no round: kept
    out = merge(out, None, remote=[])
    assert [i.path for i in out] == ["a/x"]  # the round completed without skipping it


def test_record_persists_and_reports_new_and_cleared_once(
    tmp_path: Path, folder_keys: FolderKeys
) -> None:
    root = tmp_path / "f"
    write_tree(root, {"ok.txt": "x"})
    os.mkfifo(root / "pipe")
    with Index.open(tmp_path / "idx") as index:
        first = record(index, scan(root, folder_keys, index))
        assert [(i.path, i.kind) for i in first.new] == [("pipe", "special")] and first.skipped == 1
        again = record(index, scan(root, folder_keys, index))
        assert (
            again.new == () and again.cleared == () and again.items[0].since == first.items[0].since
        )
        (root / "pipe").unlink()
        fixed = record(index, scan(root, folder_keys, index))
        assert [i.path for i in fixed.cleared] == ["pipe"] and fixed.items == ()
        assert load(index) == []


def test_odd_paths_are_kept_exact_and_escaped_only_in_output() -> None:
    made = FailedItem.of("not-utf8", "dir/bad\udcff.txt", "name is not UTF-8")
    assert made.path == "dir/bad\udcff.txt" and made.hint and made.skipped
    assert failed_lines([made], "DIR")[1].startswith("  dir/bad\udcff.txt")  # say() escapes it
    assert not FailedItem.of("unportable", "a:b", "x").skipped


class FakeStat:
    def __init__(self, size: int, mtime_ns: int, ino: int = 1) -> None:
        self.st_size, self.st_mtime_ns, self.st_ino = size, mtime_ns, ino


class Clock:
    def __init__(self) -> None:
        self.now = 1000 * S

    def __call__(self) -> int:
        return self.now


def test_settle_holds_a_recent_file_until_quiet_and_reads_an_old_one_at_once() -> None:
    clock = Clock()
    settle = Settle(quiet=2.0, cap=60.0, clock=clock)
    assert settle("old", FakeStat(1, clock.now - 5 * S)) is False  # type: ignore[arg-type]
    written = clock.now
    assert settle("new", FakeStat(1, written)) is True  # type: ignore[arg-type]
    clock.now += S
    assert settle("new", FakeStat(2, clock.now)) is True  # type: ignore[arg-type]  # grew
    clock.now += 2 * S + 1
    assert settle("new", FakeStat(2, clock.now - 2 * S - 1)) is False  # type: ignore[arg-type]


def test_settle_two_equal_looks_a_window_apart_settle_a_future_mtime() -> None:
    clock = Clock()
    settle = Settle(quiet=2.0, cap=60.0, clock=clock)
    future = FakeStat(1, clock.now + 3600 * S)
    assert settle("f", future) is True  # type: ignore[arg-type]
    clock.now += S
    assert settle("f", future) is True  # type: ignore[arg-type]
    clock.now += S
    assert settle("f", future) is False  # type: ignore[arg-type]


def test_settle_caps_a_file_that_never_settles_and_says_so() -> None:
    clock = Clock()
    settle = Settle(quiet=2.0, cap=10.0, clock=clock)
    size = 0
    while True:
        size += 1
        if not settle("log", FakeStat(size, clock.now)):  # type: ignore[arg-type]
            break
        clock.now += S
        assert size < 20
    assert size == 11 and settle.take_capped() == ["log"] and settle.take_capped() == []


def test_busy_for_sees_recent_writes_in_the_named_directories(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": {"old.txt": "x"}, "b": {"new.txt": "y"}})
    os.utime(tmp_path / "a" / "old.txt", ns=(1, 1))
    now = (tmp_path / "b" / "new.txt").stat().st_mtime_ns
    assert busy_for(tmp_path, ["a"], 2.0, now) == 0.0
    assert abs(busy_for(tmp_path, ["a", "b"], 2.0, now + S // 10) - 1.9) < 1e-6


def test_a_file_held_back_keeps_its_item_instead_of_flapping() -> None:
    previous = [item("busy.log", "being-written", since=5)]
    out = merge(previous, [], listed={""}, present=[], held={"busy.log"})
    assert [(i.path, i.since) for i in out] == [("busy.log", 5)]
    assert merge(previous, [], listed={""}, present=[]) == []  # judged again: cleared
