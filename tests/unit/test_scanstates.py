"""A dirty scan reads the stat rows it needs, not the whole index (chunksync.scanstates),
and still deletes the row of a file that vanished under a listed directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.scanner import scan
from chunksync.scanstates import ScanStates
from chunksync.storage.index import Index
from tests.helpers.corpus import write_tree


def rows(index: Index) -> set[str]:
    return {s.path for s in index.iter_states()}


def test_dirty_scan_deletes_rows_of_vanished_files_only_below_listed_dirs(
    tmp_path: Path, folder_keys: FolderKeys
) -> None:
    root = tmp_path / "f"
    write_tree(
        root, {"a": {"x.txt": "1", "deep": {"y.txt": "2"}}, "b": {"z.txt": "3"}, "top.txt": "t"}
    )
    with Index.open(tmp_path / "idx") as index:
        scan(root, folder_keys, index)
        assert rows(index) == {"a/x.txt", "a/deep/y.txt", "b/z.txt", "top.txt"}
        (root / "b/z.txt").unlink()
        shutil.rmtree(root / "a/deep")
        result = scan(root, folder_keys, index, dirty={"a", "b"})
        assert rows(index) == {"a/x.txt", "top.txt"}
        assert set(result.entries) == {"a", "a/x.txt", "b", "top.txt"}
        with Index.open(tmp_path / "fresh") as other:
            assert result.root_id == scan(root, folder_keys, other).root_id


def test_candidates_are_what_the_listed_dirs_held(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(root, {"a": {"x.txt": "1", "deep": {"y.txt": "2"}}, "ab": {"z.txt": "3"}})
    with Index.open(tmp_path / "idx") as index:
        scan(root, folder_keys, index)
        old = dict(index.iter_dirtrees())
        now = scan(root, folder_keys, index).entries
        states = ScanStates(index, {"a"})
        assert set(states.candidates({"a", "a/deep"}, old, now)) == {"a/x.txt", "a/deep/y.txt"}
        assert set(states.candidates({""}, old, now)) == set()  # the root holds no file
        gone = {k: v for k, v in now.items() if not k.startswith("a/") and k != "a"}
        assert set(states.candidates({""}, old, gone)) == {"a/x.txt", "a/deep/y.txt"}
        assert set(states.candidates({"new"}, old, now)) == set()  # no listing: by prefix
        assert states.get("ab/z.txt") is not None and states.get("nope") is None
        every = {"a/x.txt", "a/deep/y.txt", "ab/z.txt"}
        assert set(ScanStates(index, None).candidates((), {}, {})) == every
