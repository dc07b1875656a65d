"""Rescanning a large unchanged tree reads no file content, and a scan of one dirty
directory lists only it (work counted, not timed: tools/bench_rescan.py times it)."""

from __future__ import annotations

from pathlib import Path

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.scanner import scan
from chunksync.storage.index import Index
from tests.helpers.corpus import make_small_tree


def test_rescan_of_20000_unchanged_files(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "tree"
    make_small_tree(root, 20_000)
    with Index.open(tmp_path / "idx") as index:
        first = scan(root, folder_keys, index)
        assert first.files == first.files_read == 20_000
        again = scan(root, folder_keys, index)
        assert again.files_read == 0 and again.bytes_read == 0
        assert again.root_id == first.root_id and again.files == 20_000
        partial = scan(root, folder_keys, index, dirty={"pkg003/mod07"})
        assert partial.files_read == 0 and partial.root_id == first.root_id
        assert partial.listed == frozenset({"pkg003/mod07"})
