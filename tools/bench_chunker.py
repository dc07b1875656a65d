#!/usr/bin/env python3
"""Chunker throughput, side by side with a memory-copy baseline and keyed BLAKE3.

    tools/bench_chunker.py [--mib 256] [--threads 2]

Reports MB/s for: copying the buffer (baseline), cutting it whole, streaming it through
Chunker.iter_chunks, BLAKE3 chunk ids, and cut+hash in N threads (shows whether the
compiled cut loop and BLAKE3 release the GIL), plus the mean chunk size.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chunksync.chunker import Chunker
from chunksync.crypto.folder_keys import FolderKeys


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    data = os.urandom(args.mib << 20)
    keys = FolderKeys(bytes(range(32)))
    chunker = Chunker(seed=keys.chunker_seed)
    mb = len(data) / 1e6
    sizes: list[int] = []

    def stream_hash(part: bytes) -> None:
        for view in chunker.iter_chunks(io.BytesIO(part)):
            keys.chunk_id(view)

    target = bytearray(len(data))  # allocated and touched outside the timing
    target[:] = data

    def copy() -> None:
        target[:] = data

    results = {
        "copy (baseline)": timed(copy),
        "cut whole buffer": timed(lambda: sizes.extend(len(v) for v in chunker.cut_buffer(data))),
        "stream iter_chunks": timed(lambda: sum(1 for _ in chunker.iter_chunks(io.BytesIO(data)))),
        "blake3 ids only": timed(
            lambda: [keys.chunk_id(data[i : i + (1 << 20)]) for i in range(0, len(data), 1 << 20)]
        ),
        "stream + ids, 1 thread": timed(lambda: stream_hash(data)),
    }
    parts = [data[i :: args.threads] for i in range(args.threads)]  # same total bytes
    with ThreadPoolExecutor(args.threads) as pool:
        results[f"stream + ids, {args.threads} threads"] = timed(
            lambda: list(pool.map(stream_hash, parts))
        )
    base = results["copy (baseline)"]
    print(
        f"{args.mib} MiB random data; mean chunk {sum(sizes) / len(sizes) / 2**20:.2f} MiB "
        f"({len(sizes)} chunks, max {max(sizes) / 2**20:.2f} MiB)"
    )
    for name, seconds in results.items():
        print(f"  {name:28s} {mb / seconds:8.0f} MB/s   {seconds / base:6.2f}x copy time")
    one = results["stream + ids, 1 thread"]
    many = results[f"stream + ids, {args.threads} threads"]
    print(f"  thread speed-up cut+hash: {one / many:.2f}x with {args.threads} threads")


if __name__ == "__main__":
    main()
