#!/usr/bin/env python3
"""Scan + chunk + hash + compress + encrypt throughput, as a ratio to plain reading.

    tools/bench_pipeline.py [DIR] [--size 256M] [--workers 2] [--level 3]

DIR defaults to a corpus generated in a temp dir (tools/gen_corpus.py). The page cache
is warmed first, then each measurement runs over the same files, side by side:

  read        read every file in 16 MiB pieces (the ``cat`` baseline)
  +chunk      read and cut with FastCDC
  +hash       ... and keyed BLAKE3 chunk ids
  +zstd       ... and zstd-compress each chunk
  +seal       ... and seal() each chunk (zstd + padding + XAES-256-GCM), one thread
  pipeline    scanner.scan (fresh index, N workers) feeding a Sealer (N workers)

and prints MB/s and the ratio to the read baseline. Goal: pipeline >= 250 MB/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zstandard

from chunksync.chunker import Chunker
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import ZSTD_LEVEL, seal
from chunksync.objects import ObjectKind
from chunksync.pipeline import Sealer
from chunksync.scanner import scan
from chunksync.storage.index import Index
from tests.helpers.corpus import make_corpus
from tools.gen_corpus import parse_size

KEYS = FolderKeys(bytes(range(32)))


def files_of(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and ".chunksync" not in p.parts
    )


def read_all(files: list[Path]) -> None:
    buf = bytearray(16 << 20)
    view = memoryview(buf)
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(view):
                pass


def per_chunk(files: list[Path], chunker: Chunker, work: Callable[[memoryview], object]) -> None:
    for path in files:
        for _off, view in chunker.chunk_file(path):
            work(view)


def run_pipeline(root: Path, workers: int, level: int) -> tuple[int, int]:
    sent = [0]

    def sink(batch: list[tuple[bytes, bytes]]) -> None:
        sent[0] += sum(len(blob) for _oid, blob in batch)

    with tempfile.TemporaryDirectory() as tmp, Index.open(Path(tmp)) as index:
        with Sealer(KEYS, sink, workers=workers, level=level) as sealer:
            result = scan(root, KEYS, index, on_chunk=sealer, workers=workers)
    return result.bytes_read, sent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, nargs="?")
    parser.add_argument("--size", default="256M")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--level", type=int, default=ZSTD_LEVEL)
    args = parser.parse_args()
    tmp = None
    root = args.dir
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="chunksync-bench-")
        root = Path(tmp.name)
        make_corpus(root, parse_size(args.size))
    files = files_of(root)
    total = sum(p.stat().st_size for p in files)
    read_all(files)  # warm the page cache
    chunker = Chunker(seed=KEYS.chunker_seed)
    zc = zstandard.ZstdCompressor(level=args.level)

    def stage(fn: Callable[[], object]) -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    results = {
        "read (baseline)": stage(lambda: read_all(files)),
        "+chunk": stage(lambda: per_chunk(files, chunker, lambda v: None)),
        "+hash": stage(lambda: per_chunk(files, chunker, KEYS.chunk_id)),
        "+zstd": stage(
            lambda: per_chunk(files, chunker, lambda v: (KEYS.chunk_id(v), zc.compress(v)))
        ),
        "+seal (1 thread)": stage(
            lambda: per_chunk(
                files,
                chunker,
                lambda v: seal(KEYS, ObjectKind.CHUNK, KEYS.chunk_id(v), v, level=args.level),
            )
        ),
    }
    out = [0]
    results[f"pipeline ({args.workers} workers)"] = stage(
        lambda: out.__setitem__(0, run_pipeline(root, args.workers, args.level)[1])
    )
    base = results["read (baseline)"]
    print(
        f"corpus {root}: {len(files)} files, {total / 2**20:.0f} MiB; zstd level "
        f"{args.level}; cpus {os.cpu_count()}; load {os.getloadavg()[0]:.1f}"
    )
    for name, seconds in results.items():
        print(
            f"  {name:24s} {total / seconds / 1e6:8.0f} MB/s   "
            f"{(total / seconds) / (total / base):5.2f}x read throughput"
        )
    print(f"  sealed output {out[0] / 2**20:.0f} MiB ({out[0] / total:.2f} of input)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
