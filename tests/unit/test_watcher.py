"""The watcher's pure parts: event → dirty directories, and the debouncer on a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from chunksync.watcher import Batch, Debouncer, FolderWatcher, dirty_dirs, expand_subtrees

ROOT = "/data/folder"


@pytest.mark.parametrize(
    ("event", "dirs", "subtrees"),
    [
        (FileModifiedEvent(f"{ROOT}/a/b/c.txt"), {"a/b"}, set()),
        (FileCreatedEvent(f"{ROOT}/top.txt"), {""}, set()),
        (FileDeletedEvent(f"{ROOT}/a/x"), {"a"}, set()),
        (FileClosedEvent(f"{ROOT}/a/x"), {"a"}, set()),
        (FileMovedEvent(f"{ROOT}/a/x", f"{ROOT}/b/y"), {"a", "b"}, set()),
        (DirCreatedEvent(f"{ROOT}/a/new"), {"a"}, {"a/new"}),
        (DirDeletedEvent(f"{ROOT}/a/old"), {"a"}, set()),
        (DirModifiedEvent(f"{ROOT}/a"), {"", "a"}, set()),
        (DirModifiedEvent(ROOT), {""}, set()),
        (DirMovedEvent(f"{ROOT}/a/d", f"{ROOT}/b/e"), {"a", "b"}, {"b/e"}),
        # moved out of the folder: only the source side counts
        (FileMovedEvent(f"{ROOT}/a/x", "/elsewhere/x"), {"a"}, set()),
        # NFD names (macOS) become NFC, as the scanner stores them
        (FileModifiedEvent(f"{ROOT}/cafe\u0301/x"), {"caf\u00e9"}, set()),
    ],
)
def test_events_map_to_dirty_directories(event, dirs, subtrees) -> None:  # type: ignore[no-untyped-def]
    assert dirty_dirs(ROOT, event) == (dirs, subtrees)


@pytest.mark.parametrize(
    "event",
    [
        FileModifiedEvent(f"{ROOT}/.chunksync/index/data.mdb"),
        FileCreatedEvent(f"{ROOT}/.chunksync/tmp/part-123"),
        DirModifiedEvent(f"{ROOT}/.chunksync"),
        FileModifiedEvent("/data/other/file"),
        FileModifiedEvent("/data/folder2/file"),
        FileOpenedEvent(f"{ROOT}/a/x"),
        FileClosedNoWriteEvent(f"{ROOT}/a/x"),
        # the engine's rename from its temp dir: only the destination is in the folder
        FileMovedEvent(f"{ROOT}/.chunksync/tmp/part-1", f"{ROOT}/a/x"),
    ],
)
def test_state_dir_outside_and_read_only_events_are_ignored(event) -> None:  # type: ignore[no-untyped-def]
    dirs, subtrees = dirty_dirs(ROOT, event)
    if event.event_type == "moved" and event.dest_path.startswith(ROOT + "/a"):
        assert (dirs, subtrees) == ({"a"}, set())
    else:
        assert (dirs, subtrees) == (set(), set())


def test_quiet_period_batches_a_burst() -> None:
    d = Debouncer(quiet=0.15, max_delay=1.0)
    assert d.deadline() is None and not d.due(0.0)
    d.add(10.0, ["a"])
    d.add(10.1, ["b"])
    assert not d.due(10.2)
    assert d.due(10.25)
    assert d.take() == Batch(frozenset({"a", "b"}))
    assert d.deadline() is None and d.pending == 0


def test_max_delay_under_continuous_events() -> None:
    d = Debouncer(quiet=0.15, max_delay=1.0)
    t = 0.0
    while not d.due(t):
        d.add(t, ["logs"])  # an event every 100 ms never leaves a quiet gap
        t = round(t + 0.1, 3)
    assert t == pytest.approx(1.0)
    assert d.take().dirs == {"logs"}


def test_every_event_restarts_the_quiet_period() -> None:
    d = Debouncer(quiet=0.15, max_delay=1.0)
    d.add(0.0, ["a"])
    d.add(0.1, ["a"])  # the same file written again: not quiet yet
    assert not d.due(0.2)
    assert d.due(0.25)
    d.add(0.3, [])  # an event that dirtied nothing changes nothing
    assert d.deadline() == pytest.approx(0.25)


def test_full_rescan_request_and_merge() -> None:
    d = Debouncer()
    d.add(0.0, ["a"], ["a/new"])
    d.request_full(0.05)
    batch = d.take()
    assert batch.full and batch.subtrees == {"a/new"}
    assert bool(Batch()) is False
    merged = Batch(frozenset({"x"})).merge(Batch(subtrees=frozenset({"y"}), full=True))
    assert merged == Batch(frozenset({"x"}), frozenset({"y"}), True)


def test_debouncer_rejects_inconsistent_timings() -> None:
    with pytest.raises(ValueError, match="quiet"):
        Debouncer(quiet=2.0, max_delay=1.0)


def test_expand_subtrees_lists_existing_descendants(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "d").mkdir()
    (tmp_path / "a" / "link").symlink_to(tmp_path / "a" / "d")
    assert expand_subtrees(tmp_path, ["a", "gone"]) == {"a", "a/b", "a/b/c", "a/d", "gone"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_next_batch_returns_once_the_fake_clock_passes_the_deadline() -> None:
    clock = FakeClock()
    watcher = FolderWatcher(Path(ROOT), quiet=0.15, max_delay=1.0, clock=clock)
    waiter = asyncio.ensure_future(watcher.next_batch())
    await asyncio.sleep(0)
    assert not waiter.done()
    watcher.add(["docs"])
    clock.now += 0.2  # the quiet period has passed when the waiter looks again
    batch = await asyncio.wait_for(waiter, 5)
    assert batch.dirs == {"docs"} and watcher.pending == 0


async def test_real_observer_reports_a_file_write(tmp_path: Path) -> None:
    (tmp_path / ".chunksync").mkdir()
    (tmp_path / "sub").mkdir()
    watcher = FolderWatcher(tmp_path, quiet=0.05, max_delay=0.5)
    watcher.start()
    try:
        (tmp_path / ".chunksync" / "ignored").write_text("x")
        (tmp_path / "sub" / "file.txt").write_text("hello")
        batch = await asyncio.wait_for(watcher.next_batch(), 10)
        assert "sub" in batch.dirs and not any(d.startswith(".chunksync") for d in batch.dirs)
        assert watcher.alive()
    finally:
        watcher.stop()


def test_a_batch_past_the_dirty_cap_becomes_a_full_rescan() -> None:
    from chunksync.watcher import MAX_DIRTY

    many = Batch(frozenset(f"d{i}" for i in range(MAX_DIRTY)))
    assert many.merge(Batch(frozenset({"d0"}))) == many  # at the cap: kept as it is
    merged = many.merge(Batch(subtrees=frozenset({"one-more"})))
    assert merged == Batch(full=True)  # bounded: the sets are dropped, a full rescan holds


def test_a_finished_save_makes_the_batch_due_after_the_short_closed_quiet() -> None:
    from chunksync.watcher import CLOSED_QUIET, Debouncer

    d = Debouncer(quiet=0.15, max_delay=1.0)
    d.add(10.0, {"a"})  # the write
    assert d.deadline() == pytest.approx(10.15)
    d.add(10.01, {"a"}, closed=True)  # its close: the save is complete
    assert d.deadline() == pytest.approx(10.01 + CLOSED_QUIET)
    d.add(10.015, {"b"})  # another write before the batch went: wait the full quiet again
    assert d.deadline() == pytest.approx(10.015 + 0.15)
    d.take()
    d.add(15.0, {""}, {"new"})  # a new directory...
    d.add(15.001, {"new"}, closed=True)  # ...and a save in it: its other files may come late
    assert d.deadline() == pytest.approx(15.001 + 0.15)
    d.take()
    d.add(20.0, {"a"}, closed=True)
    d.request_full(20.001)  # a full rescan is never hurried
    assert d.deadline() == pytest.approx(20.001 + 0.15)
