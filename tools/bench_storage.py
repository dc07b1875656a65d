"""Benchmark the server's PackObjectStore against a naive file-per-object store.

Runs side by side on the same disk, with durability on in both:

* **pack**: ``PackObjectStore.put_many`` from N threads (one pack sync + one index
  commit per group of concurrent batches);
* **pack-serial**: the same store with group commit disabled (each batch syncs and
  commits alone), to show what group commit buys;
* **naive**: one file per object, written to a temp name, fsynced and renamed — what a
  store without batching pays (20,000 small files = 20,000 fsyncs).

Workloads: 1 MiB objects in batches of 16 and 4 KiB objects in batches of 500, then
``has_many`` over 100,000 ids (warm in-memory set, cold first call, and the SQL path a
read-only second process uses). Figures are wall-clock on a possibly loaded machine:
compare the ratios, not the absolute numbers.

Usage: ``.venv/bin/python tools/bench_storage.py [--dir bench-data] [--threads 8]``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chunksync_server.storage import PackObjectStore, StorageError
from chunksync_server.storage import packs as packs_module

Batch = list[tuple[bytes, bytes]]
PutMany = Callable[[str, Batch], int]


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    objects: int
    nbytes: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.objects / self.seconds

    @property
    def mbps(self) -> float:
        return self.nbytes / self.seconds / 1e6


def make_batches(
    threads: int, per_thread: int, batch: int, size: int, seed: int
) -> list[list[Batch]]:
    """Distinct ids per object; blob contents are shared across batches to save RAM."""
    rng = random.Random(seed)
    blobs = [rng.randbytes(size) for _ in range(batch)]
    return [
        [[(rng.randbytes(32), blobs[i]) for i in range(batch)] for _ in range(per_thread)]
        for _ in range(threads)
    ]


def run_threads(name: str, put: PutMany, work: list[list[Batch]]) -> Result:
    start = threading.Barrier(len(work) + 1)
    errors: list[Exception] = []

    def worker(batches: list[Batch]) -> None:
        start.wait()
        try:
            for batch in batches:
                put("bench", batch)
        except Exception as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(batches,)) for batches in work]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    objects = sum(len(b) for batches in work for b in batches)
    nbytes = sum(len(blob) for batches in work for b in batches for _, blob in b)
    return Result(name, objects, nbytes, seconds)


def naive_put(root: Path) -> PutMany:
    """One file per object: write a temp file, fsync it, rename it into place."""

    def put(ns: str, batch: Batch) -> int:
        folder = root / ns
        folder.mkdir(parents=True, exist_ok=True)
        for oid, blob in batch:
            final = folder / oid.hex()
            tmp = folder / f"{oid.hex()}.{threading.get_ident()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, blob)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        return len(batch)

    return put


def serial_commit(self: packs_module._GroupCommit, job: packs_module._Job) -> None:
    """Group commit disabled: every batch syncs and commits on its own."""
    with SERIAL:
        job.error = self._flush([job])
    job.done.set()
    if job.error is not None:
        raise StorageError(job.error)


SERIAL = threading.Lock()


def bench_puts(
    base: Path, label: str, work: list[list[Batch]], naive_share: int, rounds: int
) -> list[Result]:
    """Interleave the three contenders round by round; keep each one's median run."""
    runs: dict[str, list[Result]] = {}
    naive_work = [batches[:naive_share] for batches in work]
    for round_ in range(rounds):
        for name, serial in (("pack", False), ("pack-serial", True)):
            store = PackObjectStore(base / f"{name}-{round_}" / label)
            original = packs_module._GroupCommit.commit
            if serial:
                packs_module._GroupCommit.commit = serial_commit  # type: ignore[method-assign]
            try:
                result = run_threads(f"{name} {label}", store.put_many, work)
            finally:
                packs_module._GroupCommit.commit = original  # type: ignore[method-assign]
                store.close()
            runs.setdefault(name, []).append(result)
        naive = naive_put(base / f"naive-{round_}" / label)
        runs.setdefault("naive", []).append(run_threads(f"naive {label}", naive, naive_work))
    return [sorted(rs, key=lambda r: r.seconds)[len(rs) // 2] for rs in runs.values()]


def bench_has_many(base: Path, present: int) -> None:
    store = PackObjectStore(base / "has")
    rng = random.Random(7)
    ids = [rng.randbytes(32) for _ in range(present)]
    for start in range(0, present, 5000):
        store.put_many("bench", [(oid, b"x") for oid in ids[start : start + 5000]])
    store.close()
    query = ids[: present // 2] + [rng.randbytes(32) for _ in range(100_000 - present // 2)]
    writer = PackObjectStore(base / "has")
    began = time.perf_counter()
    assert len(writer.has_many("bench", query)) == present // 2
    cold = time.perf_counter() - began
    warm = []
    for _ in range(5):
        began = time.perf_counter()
        writer.has_many("bench", query)
        warm.append(time.perf_counter() - began)
    reader = PackObjectStore(base / "has")  # a second opener: read-only, SQL path
    began = time.perf_counter()
    assert len(reader.has_many("bench", query)) == present // 2
    sql = time.perf_counter() - began
    reader.close()
    writer.close()
    print(f"\nhas_many 100,000 ids ({present:,} stored, half of them asked):")
    print(f"  writer, warm (median of 5): {statistics.median(warm) * 1e3:7.1f} ms")
    print(f"  writer, cold (loads id set): {cold * 1e3:7.1f} ms")
    print(f"  read-only opener (SQL IN):   {sql * 1e3:7.1f} ms")


def report(results: list[Result]) -> None:
    naive = results[-1]
    print(f"{'run':24} {'objects':>8} {'MB':>8} {'s':>7} {'obj/s':>9} {'MB/s':>8} {'x naive':>8}")
    for r in results:
        print(
            f"{r.name:24} {r.objects:8d} {r.nbytes / 1e6:8.1f} {r.seconds:7.2f}"
            f" {r.rate:9.0f} {r.mbps:8.1f} {r.rate / naive.rate:8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("bench-data"))
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--large-batches", type=int, default=3, help="per thread, 16 x 1 MiB")
    parser.add_argument("--small-batches", type=int, default=4, help="per thread, 500 x 4 KiB")
    parser.add_argument("--rounds", type=int, default=3, help="report the median round")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=args.dir))
    try:
        print(f"{args.threads} threads, durability on, median of {args.rounds}, in {base}\n")
        large = make_batches(args.threads, args.large_batches, 16, 1 << 20, seed=1)
        report(
            bench_puts(base, "1MiB x16", large, naive_share=args.large_batches, rounds=args.rounds)
        )
        small = make_batches(args.threads, args.small_batches, 500, 4096, seed=2)
        print()
        report(bench_puts(base, "4KiB x500", small, naive_share=1, rounds=args.rounds))
        bench_has_many(base, present=100_000)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
