"""The pure open/close decision (chunksync.openfiles): which event sequences make a file
stable at once, and which fall back to the quiet window."""

from __future__ import annotations

import os
from pathlib import Path

from chunksync.openfiles import FileState, OpenFiles, settled, step
from chunksync.settle import Settle

SIG = (5, 1_000, 42)


def run(*kinds: str, sig: tuple[int, int, int] | None = SIG) -> FileState | None:
    state = None
    for kind in kinds:
        state = step(state, kind, sig if kind == "closed" else None)
    return state


def test_an_ordinary_save_is_stable_at_once() -> None:
    assert settled(run("created", "opened", "modified", "closed"), SIG)
    assert settled(run("opened", "modified", "modified", "closed"), SIG)


def test_the_daemons_own_read_after_the_save_changes_nothing() -> None:
    assert settled(run("opened", "modified", "closed", "opened", "closed_no_write"), SIG)


def test_a_file_still_open_with_writes_is_held() -> None:
    assert not settled(run("opened", "modified"), SIG)
    assert not settled(
        run("opened", "opened", "modified", "closed"), SIG
    )  # a second writer still open


def test_a_write_after_the_close_is_held() -> None:
    assert not settled(run("opened", "modified", "closed", "opened", "modified"), SIG)


def test_a_reader_still_holding_it_is_held() -> None:
    assert not settled(run("opened", "modified", "closed", "opened"), SIG)


def test_events_we_cannot_vouch_for_fall_back_to_the_window() -> None:
    assert not settled(run("modified"), SIG)  # never seen opened
    assert not settled(run("modified", "closed"), SIG)  # a writer opened before we watched
    assert not settled(run("closed"), SIG)
    assert not settled(
        run("opened", "closed_no_write", "closed_no_write", "opened", "modified", "closed"), SIG
    )
    assert not settled(run("created"), SIG)  # link(): no open, no close
    assert not settled(None, SIG)


def test_a_stat_different_from_the_one_at_the_close_is_held() -> None:
    """A write whose events are still queued shows as a changed size, mtime or inode."""
    assert not settled(run("opened", "modified", "closed"), (6, 1_000, 42))
    assert not settled(run("opened", "modified", "closed", sig=None), SIG)


def tracker(tmp_path: Path, name: str = "a.txt") -> tuple[OpenFiles, os.stat_result]:
    (tmp_path / name).write_bytes(b"hello")
    opens = OpenFiles(str(tmp_path))
    for kind in ("created", "opened", "modified", "closed"):
        opens.event(kind, name)
    return opens, os.stat(tmp_path / name)


def test_the_tracker_follows_renames_and_forgets_deletions(tmp_path: Path) -> None:
    opens, st = tracker(tmp_path, "tmp.swp")
    os.rename(tmp_path / "tmp.swp", tmp_path / "a.txt")
    opens.event("moved", "tmp.swp", "a.txt")  # write a temp file, rename it over the original
    assert opens.stable("a.txt", st) and not opens.stable("tmp.swp", st)
    opens.event("deleted", "a.txt")
    assert not opens.stable("a.txt", st)


def test_an_overflow_or_a_non_inotify_observer_trusts_nothing(tmp_path: Path) -> None:
    opens, st = tracker(tmp_path)
    opens.overflow()
    assert not opens.stable("a.txt", st)
    opens, st = tracker(tmp_path)
    opens.enabled = False
    assert not opens.stable("a.txt", st)


def test_settle_reads_a_closed_file_at_once_and_holds_an_open_one(tmp_path: Path) -> None:
    opens, st = tracker(tmp_path)
    now = st.st_mtime_ns  # the file was just written: inside the window
    settle = Settle(quiet=60.0, clock=lambda: now, opens=opens)
    assert settle("a.txt", st) is False
    opens.event("opened", "a.txt")
    opens.event("modified", "a.txt")
    assert settle("a.txt", st) is True  # open with writes: the window applies
