"""LMDB index: round trips, atomic write transactions, map growth, crash durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chunksync.objects import ObjectId, ObjectKind
from chunksync.storage.index import FileState, Index, index_dir


def _oid(n: int) -> ObjectId:
    return ObjectId(n.to_bytes(32, "big"))


def _state(path: str, n: int = 1) -> FileState:
    return FileState(
        path, size=n, mtime_ns=n * 10, ctime_ns=n * 20, inode=n, mode=0o100644, manifest_id=_oid(n)
    )


def _event(change: str, path: str = "p", **extra: object) -> dict[str, object]:
    """An event of the shape the engine writes (the index refuses any other on read)."""
    return {"time_ns": 1, "path": path, "change": change, "device": "laptop", **extra}


def _conflict(n: int) -> dict[str, object]:
    return {"copy_path": f"x (conflicted copy {n}).txt", "explanation": "both changed"}


def test_round_trip_every_database(tmp_path: Path) -> None:
    with Index.open(index_dir(tmp_path)) as index:
        with index.write() as w:
            w.put_state(_state("a/b.txt", 1))
            w.put_state(FileState("a/c", 2, 3, 4, 5, 0o100755, _oid(9), racy=True))
            w.put_state(_state("ab", 3))
            w.put_object(_oid(7), ObjectKind.TREE, b'{"t":"tree"}')
            w.add_known([_oid(1), _oid(2)])
            w.put_dirtree("a", _oid(8))
            w.set_meta("device", b"laptop")
            first = w.append_event(_event("add", "a/b.txt"))
            second = w.append_event(_event("modify", "a/c"))
            w.put_conflict("x.txt", _conflict(1))
        assert (first, second) == (1, 2)
        assert index.get_state("a/b.txt") == _state("a/b.txt", 1)
        racy = index.get_state("a/c")
        assert racy is not None and racy.racy
        assert index.get_state("missing") is None
        assert [s.path for s in index.iter_states("a/")] == ["a/b.txt", "a/c"]
        assert [s.path for s in index.iter_states()] == ["a/b.txt", "a/c", "ab"]
        assert index.get_object(_oid(7)) == (ObjectKind.TREE, b'{"t":"tree"}')
        assert index.get_object(_oid(6)) is None
        assert index.known(_oid(1)) and not index.known(_oid(3))
        assert index.known_many([_oid(1), _oid(2), _oid(3)]) == {_oid(1), _oid(2)}
        assert index.get_dirtree("a") == _oid(8)
        assert index.get_meta("device") == b"laptop"
        assert [s for s, _ in index.iter_events()] == [1, 2]
        assert [e["change"] for _, e in index.iter_events(after=1)] == ["modify"]
        assert list(index.iter_conflicts()) == [("x.txt", _conflict(1))]
        with index.write() as w:
            w.delete_state("a/c")
            w.delete_meta("device")
            w.delete_conflict("x.txt")
            w.delete_dirtree("a")
            assert w.append_event(_event("delete")) == 3
        assert index.get_state("a/c") is None
        assert index.get_meta("device") is None
        assert list(index.iter_conflicts()) == []
        assert index.get_dirtree("a") is None


def test_long_paths_and_root_dirtree(tmp_path: Path) -> None:
    long_a = "d/" + "a" * 600 + "/x"
    long_b = "d/" + "a" * 600 + "/y"
    with Index.open(tmp_path / "idx") as index:
        with index.write() as w:
            w.put_state(_state(long_a, 1))
            w.put_state(_state(long_b, 2))
            w.put_dirtree("", _oid(5))
            w.put_dirtree("d/" + "a" * 600, _oid(6))
            w.put_conflict(long_a, _conflict(2))
        assert index.get_state(long_a) == _state(long_a, 1)
        assert [s.path for s in index.iter_states("d/" + "a" * 600 + "/y")] == [long_b]
        assert sorted(s.path for s in index.iter_states("d/")) == [long_a, long_b]
        assert index.get_dirtree("") == _oid(5)
        assert dict(index.iter_dirtrees()) == {"": _oid(5), "d/" + "a" * 600: _oid(6)}
        assert list(index.iter_conflicts()) == [(long_a, _conflict(2))]
        with index.write() as w:
            w.delete_state(long_a)
        assert index.get_state(long_a) is None


def test_failed_block_writes_nothing(tmp_path: Path) -> None:
    with Index.open(tmp_path / "idx") as index:
        with pytest.raises(RuntimeError), index.write() as w:
            w.set_meta("k", b"v")
            w.put_state(_state("f"))
            raise RuntimeError("boom")
        assert index.get_meta("k") is None
        assert index.get_state("f") is None


def test_iteration_spans_many_batches(tmp_path: Path) -> None:
    with Index.open(tmp_path / "idx") as index:
        with index.write() as w:
            for i in range(2000):
                w.put_state(_state(f"d/{i:05d}", i + 1))
                w.append_event(_event("add", i=i))
        assert [s.size for s in index.iter_states("d/")] == list(range(1, 2001))
        assert [e["i"] for _, e in index.iter_events(after=1500)] == list(range(1500, 2000))


def test_map_grows_automatically(tmp_path: Path) -> None:
    with Index.open(tmp_path / "idx", map_size=256 << 10) as index:
        blob = os.urandom(64 << 10)
        with index.write() as w:
            for i in range(64):  # 4 MiB into a 256 KiB map, in one transaction
                w.put_object(_oid(i), ObjectKind.FILE, blob)
            w.set_meta("done", b"1")
        for i in range(64):  # and more in many small ones
            with index.write() as w:
                w.put_object(_oid(1000 + i), ObjectKind.FILE, blob)
        assert index.get_meta("done") == b"1"
        assert index.get_object(_oid(63)) == (ObjectKind.FILE, blob)
        assert index.get_object(_oid(1063)) == (ObjectKind.FILE, blob)
    with Index.open(tmp_path / "idx", map_size=256 << 10) as index:
        assert index.get_object(_oid(1063)) == (ObjectKind.FILE, blob)


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from chunksync.objects import ObjectId, ObjectKind
    from chunksync.storage.index import Index
    index = Index.open(Path(sys.argv[1]), map_size=1 << 20)
    payload = bytes(4096)
    for n in range(1, 100_000):
        with index.write() as w:
            for j in range(20):
                w.put_object(ObjectId((n * 100 + j).to_bytes(32, "big")), ObjectKind.FILE, payload)
            w.set_meta("counter", str(n).encode())
        sys.stdout.write(f"{n}\\n")
        sys.stdout.flush()
    """
)


def test_kill_9_mid_write_keeps_last_committed_state(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None
    reported = 0
    try:
        for line in child.stdout:
            reported = int(line)
            if reported >= 60:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    assert reported >= 60
    with Index.open(path) as index:
        counter = int(index.get_meta("counter") or b"0")
        # the child may have committed one more transaction before reporting it
        assert counter in (reported, reported + 1)
        for j in range(20):
            assert index.get_object(_oid(counter * 100 + j)) is not None
            assert index.get_object(_oid((counter + 1) * 100 + j)) is None
