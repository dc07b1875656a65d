"""Scanner on real files in tmp_path: Merkle ids, stat cache, changes, special cases."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from chunksync import scanner as scanner_mod
from chunksync.chunker import Chunker, ChunkerParams
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.objects import FileManifest, ObjectId, ObjectKind, decode_object
from chunksync.scanner import ScanResult, portability_warning, scan
from chunksync.storage.index import Index
from tests.helpers.corpus import FIXED_MTIME_NS, Symlink, random_bytes, write_tree

SPEC = {
    "README.md": "hello\n",
    "src": {"main.py": "print('hi')\n", "lib": {"util.py": "x = 1\n"}},
    "data": {"big.bin": random_bytes(3 << 20, 1)},
    "empty": {},
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "folder"
    write_tree(root, SPEC)
    return root


def _scan(root: Path, keys: FolderKeys, index_path: Path, **kw: object) -> ScanResult:
    with Index.open(index_path) as index:
        result = scan(root, keys, index, **kw)  # type: ignore[arg-type]
        # entries below clean directories are read from the index on demand: take them
        # all while it is open
        result.entries = dict(result.entries)
        return result


def _touch_old(path: Path) -> None:
    os.utime(path, ns=(FIXED_MTIME_NS + 10**9, FIXED_MTIME_NS + 10**9))


def _write_old(path: Path, text: str) -> None:
    """Write, then date the file back so the scanner may trust its stat next time."""
    path.write_text(text)
    _touch_old(path)


def test_same_tree_same_root_twice_and_on_two_devices(
    folder: Path, tmp_path: Path, folder_keys: FolderKeys
) -> None:
    first = _scan(folder, folder_keys, tmp_path / "idx1")
    second = _scan(folder, folder_keys, tmp_path / "idx1")
    other_device = _scan(folder, folder_keys, tmp_path / "idx2")
    assert first.root_id == second.root_id == other_device.root_id
    assert (first.files, first.dirs) == (4, 4)
    assert first.files_read == 4 and second.files_read == 0
    assert first.bytes_read == sum(e.size for e in first.entries.values() if e.kind == "file")
    assert set(first.entries) == {
        "README.md",
        "src",
        "src/main.py",
        "src/lib",
        "src/lib/util.py",
        "data",
        "data/big.bin",
        "empty",
    }
    assert first.entries == second.entries


def test_objects_are_cached_in_index(folder: Path, tmp_path: Path, folder_keys: FolderKeys) -> None:
    chunks: dict[ObjectId, bytes] = {}
    with Index.open(tmp_path / "idx") as index:
        result = scan(
            folder,
            folder_keys,
            index,
            on_chunk=lambda oid, view: chunks.setdefault(oid, bytes(view)),
        )
        entry = result.entries["data/big.bin"]
        assert entry.id is not None
        found = index.get_object(entry.id)
        assert found is not None and found[0] == ObjectKind.FILE
        assert folder_keys.meta_id(found[1]) == entry.id
        manifest = decode_object(ObjectKind.FILE, found[1])
        assert isinstance(manifest, FileManifest)
        rebuilt = b"".join(chunks[c.id] for c in manifest.chunks)
        assert rebuilt == (folder / "data/big.bin").read_bytes()
        root = index.get_object(result.root_id)
        assert root is not None and root[0] == ObjectKind.TREE
        assert index.get_dirtree("") == result.root_id
        assert index.get_state("src/lib/util.py") is not None


def test_two_keys_give_different_ids(
    folder: Path, tmp_path: Path, folder_keys: FolderKeys, other_folder_keys: FolderKeys
) -> None:
    a = _scan(folder, folder_keys, tmp_path / "a")
    b = _scan(folder, other_folder_keys, tmp_path / "b")
    assert a.root_id != b.root_id
    assert a.entries["README.md"].id != b.entries["README.md"].id


def test_modify_add_delete_rename(folder: Path, tmp_path: Path, folder_keys: FolderKeys) -> None:
    idx = tmp_path / "idx"
    before = _scan(folder, folder_keys, idx)
    _write_old(folder / "src/main.py", "print('changed')\n")
    _write_old(folder / "new.txt", "new\n")
    (folder / "README.md").unlink()
    (folder / "src/lib/util.py").rename(folder / "src/util2.py")
    after = _scan(folder, folder_keys, idx)
    assert after.root_id != before.root_id
    assert after.files_read == 3  # main.py, new.txt and util2.py (a rename changes ctime)
    assert "README.md" not in after.entries and "src/lib/util.py" not in after.entries
    assert after.entries["src/util2.py"].id == before.entries["src/lib/util.py"].id
    assert after.entries["src/main.py"].id != before.entries["src/main.py"].id
    assert "new.txt" in after.entries
    with Index.open(idx) as index:
        assert index.get_state("README.md") is None
        assert index.get_state("src/lib/util.py") is None
        assert index.get_state("src/util2.py") is not None
    # undo everything: the root id comes back
    (folder / "src/main.py").write_text("print('hi')\n")
    (folder / "new.txt").unlink()
    (folder / "README.md").write_text("hello\n")
    (folder / "src/util2.py").rename(folder / "src/lib/util.py")
    for p in ("src/main.py", "README.md", "src/lib/util.py"):
        os.utime(folder / p, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    assert _scan(folder, folder_keys, idx).root_id == before.root_id


def test_recent_files_are_racy_and_read_again(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(root, {"fresh.txt": "now", "old.txt": "old"}, mtime_ns=None)
    _touch_old(root / "old.txt")
    _scan(root, folder_keys, tmp_path / "idx")
    again = _scan(root, folder_keys, tmp_path / "idx")
    assert again.files_read == 1  # fresh.txt's mtime is too close to the scan to trust


def test_symlinks_are_recorded_not_followed(tmp_path: Path, folder_keys: FolderKeys) -> None:
    outside = tmp_path / "outside"
    write_tree(outside, {"secret.txt": "s"})
    root = tmp_path / "f"
    write_tree(root, {"link": Symlink(str(outside)), "dangling": Symlink("nowhere/x")})
    result = _scan(root, folder_keys, tmp_path / "idx")
    assert set(result.entries) == {"link", "dangling"}
    assert result.entries["link"].kind == "symlink"
    assert result.entries["link"].target == str(outside)
    assert result.entries["dangling"].target == "nowhere/x"
    assert result.files_read == 0


def test_empty_dirs_and_exec_bit(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(root, {"a": {"b": {}}, "run.sh": "#!/bin/sh\n", "plain.txt": "x"})
    (root / "run.sh").chmod(0o755)
    result = _scan(root, folder_keys, tmp_path / "idx")
    assert result.entries["a"].kind == "dir" and result.entries["a/b"].kind == "dir"
    assert result.entries["run.sh"].executable
    assert not result.entries["plain.txt"].executable
    (root / "plain.txt").chmod(0o744)
    assert _scan(root, folder_keys, tmp_path / "idx").entries["plain.txt"].executable


def test_ignore_rules_and_state_dir(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(
        root,
        {
            ".chunksyncignore": "*.log\nbuild/\n!keep.log\n",
            ".chunksync": {"ignore": "local-only.txt\n", "key": "secret"},
            "a.log": "x",
            "keep.log": "k",
            "build": {"out.o": "o"},
            "local-only.txt": "l",
            "sub": {"b.log": "x", "c.txt": "c"},
        },
    )
    result = _scan(root, folder_keys, tmp_path / "idx")
    assert set(result.entries) == {".chunksyncignore", "keep.log", "sub", "sub/c.txt"}


def test_invalid_names_are_flagged_not_dropped(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    names = ["CON", "nul.txt", "trailing.", "trailing ", "a:b", "q?", "tab\tname"]
    write_tree(root, dict.fromkeys(names, "x") | {"fine.txt": "y"})
    result = _scan(root, folder_keys, tmp_path / "idx")
    assert set(result.entries) == set(names) | {"fine.txt"}
    flagged = {w.split(":")[0] for w in result.warnings}
    assert len(result.warnings) == len(names)
    assert "fine.txt" not in flagged


def test_portability_warning_cases() -> None:
    assert portability_warning("LPT1.txt") and portability_warning("aux")
    assert portability_warning('x"y') and portability_warning("x\x01")
    assert portability_warning("é" * 200)
    assert portability_warning("console.txt") is None
    assert portability_warning("normal name.md") is None


def test_nfc_names(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(root, {"cafe\u0301.txt": "x"})  # NFD on disk
    result = _scan(root, folder_keys, tmp_path / "idx")
    assert list(result.entries) == ["caf\u00e9.txt"]


def test_special_files_skipped_with_warning(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(root, {"ok.txt": "x"})
    os.mkfifo(root / "pipe")
    result = _scan(root, folder_keys, tmp_path / "idx")
    assert set(result.entries) == {"ok.txt"}
    assert any("pipe" in w and "special" in w for w in result.warnings)


def test_growing_file_is_requeued_and_keeps_previous_state(
    tmp_path: Path, folder_keys: FolderKeys
) -> None:
    root = tmp_path / "f"
    write_tree(root, {"grow.log": "line\n", "new.log": "n\n"})
    idx = tmp_path / "idx"
    first = _scan(root, folder_keys, idx)
    (root / "grow.log").write_text("line\nline2\n")

    def append_while_reading(_oid: ObjectId, _view: memoryview) -> None:
        with open(root / "grow.log", "ab") as f:  # the file grows under the reader
            f.write(b"more\n")

    with Index.open(idx) as index:
        result = scan(root, folder_keys, index, on_chunk=append_while_reading, workers=1)
        assert result.requeued == ("grow.log",)
        assert result.entries["grow.log"] == first.entries["grow.log"]
        state = index.get_state("grow.log")
        assert state is not None and state.manifest_id == first.entries["grow.log"].id


def test_new_file_changing_once_is_read_again(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(root, {"a.txt": "v1"})
    calls: list[int] = []

    def change_once(_oid: ObjectId, _view: memoryview) -> None:
        calls.append(1)
        if len(calls) == 1:
            (root / "a.txt").write_text("version two")

    with Index.open(tmp_path / "idx") as index:
        result = scan(root, folder_keys, index, on_chunk=change_once)
        assert result.requeued == ()
        assert result.entries["a.txt"].size == len("version two")


def test_unreadable_file_keeps_previous_state(
    tmp_path: Path, folder_keys: FolderKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "f"
    write_tree(root, {"a.txt": "v1", "b.txt": "b"})
    idx = tmp_path / "idx"
    first = _scan(root, folder_keys, idx)
    (root / "a.txt").write_text("v2")
    real_open = os.open

    def deny(path: str, flags: int, *args: int) -> int:
        if str(path).endswith("a.txt"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(scanner_mod.os, "open", deny)  # root ignores chmod 000
    second = _scan(root, folder_keys, idx)
    assert second.entries["a.txt"] == first.entries["a.txt"]
    assert any("a.txt" in w and "Permission denied" in w for w in second.warnings)


def test_dirty_scan_lists_only_dirty_dirs(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(root, {"a": {"x.txt": "1", "deep": {"y.txt": "2"}}, "b": {"z.txt": "3"}})
    idx = tmp_path / "idx"
    _scan(root, folder_keys, idx)
    _write_old(root / "a/deep/y.txt", "changed")
    _write_old(root / "a/deep/new.txt", "new")
    _write_old(root / "b/z.txt", "changed too")  # not reported dirty: not seen yet
    partial = _scan(root, folder_keys, idx, dirty={"a/deep"})
    assert partial.files_read == 2
    assert partial.entries["a/deep/new.txt"].size == 3
    assert partial.entries["b/z.txt"].size == 1
    assert set(partial.entries) >= {"a", "a/x.txt", "a/deep", "a/deep/y.txt", "b", "b/z.txt"}
    full = _scan(root, folder_keys, idx)
    assert full.files_read == 1 and full.entries["b/z.txt"].size == len("changed too")
    assert _scan(root, folder_keys, idx, dirty=set()).root_id == full.root_id
    # a dirty scan of everything that changed equals a fresh full scan elsewhere
    (root / "b/z.txt").unlink()
    assert (
        _scan(root, folder_keys, idx, dirty={"b"}).root_id
        == _scan(root, folder_keys, tmp_path / "fresh").root_id
    )


def test_small_chunker_params_many_chunks(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    data = random_bytes(200_000, 3)
    write_tree(root, {"f.bin": data})
    chunker = Chunker(
        ChunkerParams(min_size=256, avg_size=1024, max_size=4096, buffer_size=8192),
        seed=folder_keys.chunker_seed,
    )
    seen: list[int] = []
    result = _scan(
        root,
        folder_keys,
        tmp_path / "idx",
        chunker=chunker,
        on_chunk=lambda _o, v: seen.append(len(v)),
    )
    assert sum(seen) == len(data) and len(seen) > 40
    assert result.entries["f.bin"].size == len(data)
    assert stat.S_ISDIR((root).stat().st_mode)


def test_file_deleted_before_reading_is_left_out(
    tmp_path: Path, folder_keys: FolderKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "f"
    write_tree(root, {"gone.txt": "x", "stays.txt": "y"})
    real_open = os.open

    def vanish(path: str, flags: int, *args: int) -> int:
        if str(path).endswith("gone.txt"):
            os.unlink(path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(scanner_mod.os, "open", vanish)
    result = _scan(root, folder_keys, tmp_path / "idx")
    assert set(result.entries) == {"stays.txt"}
    # said, not silent (as rsync's "vanished source files"): a failed item for this scan
    assert [(f.path, f.kind) for f in result.failed] == [("gone.txt", "vanished")]


def test_file_swapped_for_a_fifo_after_the_walk_does_not_hang(
    tmp_path: Path, folder_keys: FolderKeys
) -> None:
    from chunksync.scanner import _FileJob, _Reader

    path = tmp_path / "data"
    path.write_bytes(b"x" * 100)
    job = _FileJob("data", str(path), os.lstat(path), None)
    path.unlink()
    os.mkfifo(path)
    read = _Reader(folder_keys, Chunker(seed=1), None, 0)(job)
    assert read.state is None and read.problem == "changed"
