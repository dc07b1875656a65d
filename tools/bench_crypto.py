"""Benchmark blob sealing against its parts, side by side on the same 1 MiB chunks.

Prints MB/s (of plaintext) for ``seal`` / ``open_blob`` and for the baselines measured in
the same run: raw AES-256-GCM (one key, random 96-bit nonce, no compression), XAES-256-GCM
alone, and zstd alone, with one thread and with two, plus the ratios that matter:
how much of plain AES-GCM / zstd speed the full pipeline keeps, and the 2-thread speedup
(zstd, AES-GCM and BLAKE3 all release the GIL). Also the per-message cost of XAES key
derivation. Figures on a shared, loaded machine are noisy; compare ratios, not MB/s.

Usage: .venv/bin/python tools/bench_crypto.py [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import open_blob, seal
from chunksync.crypto.xaes import XAES256GCM
from chunksync.objects import ObjectKind

MIB = 1024 * 1024
CHUNK = ObjectKind.CHUNK


def text_like(size: int, seed: int) -> bytes:
    """Pseudo-text from a small vocabulary: compresses roughly 3-4x with zstd -3."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(range(97, 123), k=rng.randint(2, 9))) for _ in range(2000)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(words, k=64)) + b".\n"
    return bytes(out[:size])


def throughput(op: Callable[[int], object], threads: int, seconds: float) -> float:
    """MB/s of plaintext: ``threads`` threads each call ``op(i)`` (1 MiB) until time is up."""
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def worker(slot: int) -> None:
        op(slot)  # warm up this thread's contexts and caches
        barrier.wait()
        deadline = time.perf_counter() + seconds
        i = slot
        while time.perf_counter() < deadline:
            op(i)
            i += threads
            counts[slot] += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    return sum(counts) * MIB / (time.perf_counter() - started) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    args = parser.parse_args()

    keys = FolderKeys(bytes(range(32)))
    aes = AESGCM(os.urandom(32))
    xaes = XAES256GCM(os.urandom(32))
    local = threading.local()  # zstd contexts must not be shared between threads

    def zc() -> zstandard.ZstdCompressor:
        if not hasattr(local, "zc"):
            local.zc = zstandard.ZstdCompressor(level=3)
        return local.zc

    def zd() -> zstandard.ZstdDecompressor:
        if not hasattr(local, "zd"):
            local.zd = zstandard.ZstdDecompressor()
        return local.zd

    n = 0
    t = time.perf_counter()
    nonce = os.urandom(24)
    while n < 200_000:
        xaes.derive_key(nonce)
        n += 1
    print(f"XAES per-message key derivation: {(time.perf_counter() - t) / n * 1e6:.2f} µs")

    makers: dict[str, Callable[[int], bytes]] = {
        "compressible": lambda i: text_like(MIB, i),
        "random": lambda i: os.urandom(MIB),
    }
    for label, make in makers.items():
        chunks = [make(i) for i in range(8)]
        oids = [keys.chunk_id(c) for c in chunks]
        blobs = [seal(keys, CHUNK, o, c) for o, c in zip(oids, chunks, strict=True)]
        packed = [zc().compress(c) for c in chunks]
        aes_ct = [(nn := os.urandom(12), aes.encrypt(nn, c, None)) for c in chunks]
        ratio = sum(map(len, chunks)) / sum(map(len, blobs))
        print(f"\n1 MiB {label} chunks (sealed size ratio {ratio:.2f}x)")
        ops: dict[str, Callable[[int], object]] = {
            "seal": lambda i: seal(keys, CHUNK, oids[i % 8], chunks[i % 8]),
            "open_blob": lambda i: open_blob(keys, CHUNK, oids[i % 8], blobs[i % 8]),
            "AES-GCM enc (base)": lambda i: aes.encrypt(os.urandom(12), chunks[i % 8], None),
            "AES-GCM dec (base)": lambda i: aes.decrypt(*aes_ct[i % 8], None),
            "XAES enc": lambda i: xaes.encrypt(os.urandom(24), chunks[i % 8], None),
            "zstd-3 compress (base)": lambda i: zc().compress(chunks[i % 8]),
            "zstd decompress (base)": lambda i: zd().decompress(packed[i % 8]),
        }
        results = {
            (name, th): throughput(op, th, args.seconds)
            for name, op in ops.items()
            for th in (1, 2)
        }
        print(f"  {'operation':24} {'1 thread':>10} {'2 threads':>10} {'speedup':>8}")
        for name in ops:
            one, two = results[(name, 1)], results[(name, 2)]
            print(f"  {name:24} {one:8.0f}MB/s {two:8.0f}MB/s {two / one:7.2f}x")
        for th in (1, 2):
            s, o = results[("seal", th)], results[("open_blob", th)]
            print(
                f"  {th} thread(s): seal = {s / results[('AES-GCM enc (base)', th)]:.2f}x AES-GCM, "
                f"{s / results[('zstd-3 compress (base)', th)]:.2f}x zstd; "
                f"open = {o / results[('AES-GCM dec (base)', th)]:.2f}x AES-GCM, "
                f"{o / results[('zstd decompress (base)', th)]:.2f}x zstd"
            )


if __name__ == "__main__":
    main()
