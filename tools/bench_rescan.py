#!/usr/bin/env python3
"""Rescan of an unchanged tree: wall time and files read, against a bare stat walk.

    tools/bench_rescan.py [DIR] [--files 20000] [--repeat 3]

Without DIR, a tree of ``--files`` small files is generated in a temp dir. After one
initial scan, it times: a bare ``os.walk`` + ``lstat`` of every entry (the floor any
scanner must pay; baseline), a full rescan, and a watcher-style rescan with one dirty
directory. A good rescan reads 0 files and costs a small multiple of the bare walk.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.scanner import scan
from chunksync.storage.index import Index
from tests.helpers.corpus import make_small_tree


def bare_walk(root: Path) -> int:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lstat(os.path.join(dirpath, name))
            count += 1
    return count


def best_of(repeat: int, fn):  # type: ignore[no-untyped-def]
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, nargs="?")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    keys = FolderKeys(bytes(range(32)))
    with tempfile.TemporaryDirectory(prefix="chunksync-rescan-") as tmp:
        root = args.dir or Path(tmp) / "tree"
        if args.dir is None:
            make_small_tree(root, args.files)
        with Index.open(Path(tmp) / "index") as index:
            started = time.perf_counter()
            first = scan(root, keys, index)
            initial = time.perf_counter() - started
            walk_s, entries = best_of(args.repeat, lambda: bare_walk(root))
            full_s, full = best_of(args.repeat, lambda: scan(root, keys, index))
            some_dir = next((p for p, e in first.entries.items() if e.kind == "dir"), "")
            dirty_s, dirty = best_of(args.repeat, lambda: scan(root, keys, index, dirty={some_dir}))
    print(
        f"tree: {first.files} files, {first.dirs} dirs; initial scan {initial:.2f} s "
        f"({first.files_read} files read); load {os.getloadavg()[0]:.1f}"
    )
    print(f"  bare walk + lstat (baseline) {walk_s * 1000:7.0f} ms  ({entries} entries)")
    print(
        f"  full rescan                  {full_s * 1000:7.0f} ms  {full_s / walk_s:5.1f}x "
        f"baseline, files read {full.files_read}"
    )
    print(
        f"  rescan, 1 dirty dir          {dirty_s * 1000:7.0f} ms  {dirty_s / walk_s:5.1f}x "
        f"baseline, files read {dirty.files_read}"
    )


if __name__ == "__main__":
    main()
