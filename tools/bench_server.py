#!/usr/bin/env python3
"""Benchmark the chunk server on loopback, with durability on, against side-by-side baselines.

Starts ``python -m chunksync_server serve --port 0`` in a temporary data directory (a separate
process, as in production), logs in, and measures:

* large: N concurrent aiohttp clients uploading 1 MiB objects in batches;
* small: N concurrent clients uploading 4 KiB objects in batches;
* missing: latency of one 100,000-id "which are missing" query (half present).

Baselines measured on the same machine right before: writing the same bytes to a file
in the same directory with one fsync per batch (the disk ceiling) and BLAKE3-hashing
them (the digest check the server must do). Ratios are server / baseline.

    .venv/bin/python tools/bench_server.py [--clients 8] [--large-mb 128] [--small 16000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chunksync import wire
from chunksync_server import admin
from chunksync_server.config import Argon2Params

MiB = 1024 * 1024


def make_batches(count: int, size: int, per_batch: int) -> list[bytes]:
    bodies, items = [], []
    for _ in range(count):
        blob = os.urandom(size)
        items.append((wire.blob_digest(blob)[::-1], blob))
        if len(items) == per_batch:
            bodies.append(wire.encode_upload_frames(items))
            items = []
    if items:
        bodies.append(wire.encode_upload_frames(items))
    return bodies


def baseline_disk(bodies: list[bytes], directory: Path) -> float:
    path = directory / "baseline.bin"
    start = time.perf_counter()
    with open(path, "wb") as fh:
        for body in bodies:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def baseline_hash(bodies: list[bytes]) -> float:
    start = time.perf_counter()
    for body in bodies:
        wire.blob_digest(body)
    return time.perf_counter() - start


def start_server(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = data.parent / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chunksync_server",
            "serve",
            "--data",
            str(data),
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"listening on"):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(port_file.read_text())}"


async def upload_all(
    base: str, token: str, folder: str, bodies: list[bytes], clients: int
) -> float:
    url = f"{base}/v1/folders/{folder}/objects"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": wire.BATCH_TYPE}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(url, data=io.BytesIO(body), headers=headers) as r:
                if r.status != 200:
                    raise SystemExit(f"upload failed: {r.status} {await r.text()}")

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return time.perf_counter() - start


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data = Path(tmp) / "srv"
        admin.add_user(data, "bench", "bench-password", params=Argon2Params.fast())
        n_large = args.large_mb
        large = make_batches(n_large, MiB, 16)
        small = make_batches(args.small, 4096, 1000)
        disk_l, hash_l = baseline_disk(large, Path(tmp)), baseline_hash(large)
        disk_s = baseline_disk(small, Path(tmp))
        proc, base = start_server(data)
        try:
            async with aiohttp.ClientSession() as s:
                async with s.post(
                    f"{base}/v1/login", json={"user": "bench", "password": "bench-password"}
                ) as r:
                    token = (await r.json())["token"]
                h = {"Authorization": f"Bearer {token}"}
                for name in ("large", "small"):
                    async with s.post(f"{base}/v1/folders", json={"name": name}, headers=h) as r:
                        assert r.status == 201
            t_large = await upload_all(base, token, "large", large, args.clients)
            t_small = await upload_all(base, token, "small", small, args.clients)
            # 100k-id missing query: half the small objects are present
            ids = []
            for body in small[: max(1, len(small) // 2)]:
                ids += [oid.hex() for oid, _ in _frames(body)]
            ids += [os.urandom(32).hex() for _ in range(wire.MAX_MISSING_IDS - len(ids))]
            latencies, encode = [], []
            async with aiohttp.ClientSession(headers=h) as s:
                for _ in range(5):
                    start = time.perf_counter()
                    body = json.dumps({"ids": ids}).encode()  # client-side encoding
                    encode.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    async with s.post(
                        f"{base}/v1/folders/small/objects/missing",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    ) as r:
                        missing = json.loads(await r.read())["missing"]
                    latencies.append(time.perf_counter() - start)
        finally:
            proc.terminate()
            proc.wait()
        mb = n_large * MiB / 1e6
        print(
            f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {args.clients} clients"
        )
        print(
            f"large 1 MiB x {n_large}: {mb / t_large:8.1f} MB/s  {n_large / t_large:8.1f} obj/s"
            f"   | baseline disk+fsync {mb / disk_l:8.1f} MB/s (ratio {disk_l / t_large:.2f})"
            f"   blake3 {mb / hash_l:8.1f} MB/s"
        )
        print(
            f"small 4 KiB x {args.small}: {args.small / t_small:8.1f} obj/s"
            f"  {args.small * 4096 / 1e6 / t_small:6.1f} MB/s"
            f"   | baseline disk+fsync {args.small / disk_s:8.1f} obj/s (ratio {disk_s / t_small:.2f})"
        )
        print(
            f"missing 100,000 ids ({len(missing)} missing): request+response+parse median "
            f"{statistics.median(latencies) * 1e3:.1f} ms  min {min(latencies) * 1e3:.1f} ms"
            f"  (goal < 200 ms); client JSON encoding {statistics.median(encode) * 1e3:.1f} ms more"
        )


def _frames(body: bytes) -> list[tuple[bytes, bytes]]:
    out, pos, hdr = [], 0, wire.UPLOAD_FRAME_HEADER
    while pos < len(body):
        oid, _, length = hdr.unpack_from(body, pos)
        pos += hdr.size
        out.append((oid, body[pos : pos + length]))
        pos += length
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--large-mb", type=int, default=512, help="number of 1 MiB objects")
    parser.add_argument("--small", type=int, default=16000, help="number of 4 KiB objects")
    parser.add_argument("--dir", default=None, help="where to put the temporary data dir")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
