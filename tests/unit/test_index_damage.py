"""The damage mark beside the index: honoured at open unless its writer still runs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from chunksync.errors import IndexDamaged
from chunksync.storage.index import Index


def _marked_index(tmp_path: Path, pid: int) -> Path:
    path = tmp_path / "index"
    with Index.open(path) as index, index.write() as w:
        w.set_meta("device", b"laptop")
    (tmp_path / "index.damaged").write_text(f"{pid}\n")
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("whose", ["ours", "a process that ended"])
def test_a_marked_index_is_rebuilt_at_open_with_one_warning(tmp_path: Path, caplog, whose) -> None:
    path = _marked_index(tmp_path, os.getpid() if whose == "ours" else _dead_pid())
    with caplog.at_level(logging.WARNING), Index.open(path) as index:
        assert index.get_meta("device") is None
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert not (tmp_path / "index.damaged").exists()
    assert list(tmp_path.glob("index.broken-*"))


def test_a_mark_left_by_a_live_process_is_left_to_it(tmp_path: Path) -> None:
    """Moving an index aside under another process's open environment would lose its writes."""
    path = _marked_index(tmp_path, os.getppid())
    with Index.open(path) as index:
        assert index.get_meta("device") == b"laptop"
    assert (tmp_path / "index.damaged").exists()


def test_damage_found_while_writing_marks_the_index_and_rebuild_starts_afresh(
    tmp_path: Path,
) -> None:
    path = tmp_path / "index"
    Index.open(path).close()
    env = lmdb.open(os.fspath(path), max_dbs=10)
    with env.begin(write=True) as txn:
        txn.put(b"\xff", b"{}", db=env.open_db(b"events", txn=txn))  # a key of the wrong length
    env.close()
    with Index.open(path) as index:
        with pytest.raises(IndexDamaged, match="events"), index.write() as w:
            w.append_event({"time_ns": 1, "path": "p", "change": "add", "device": "d"})
        assert index.damaged and (tmp_path / "index.damaged").read_text().strip() == str(
            os.getpid()
        )
        index.rebuild()
        assert index.damaged is None and not (tmp_path / "index.damaged").exists()
        with index.write() as w:
            assert w.append_event({"time_ns": 1, "path": "p", "change": "add", "device": "d"}) == 1
