#!/usr/bin/env python3
"""Benchmark the whole sync: initial upload of a mixed corpus to a local server, and a
no-change sync of a 20,000-file tree, side by side with baselines on the same data.

Baselines (each run on the same warm-cache corpus): reading every file once (the floor),
`restic backup` to a local repository and `rsync -a` to a local directory when those
are installed (`apt-get install restic rsync`). Figures are MB/s and ratios.

    .venv/bin/python tools/bench_sync.py [--size 1G] [--dir /tmp/chunksync-bench]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.storage.index import Index
from chunksync.sync.engine import SyncEngine
from chunksync.transport.http import HttpClient
from tests.helpers.corpus import make_corpus, make_small_tree
from tests.helpers.server import DEFAULT_USER, ServerProcess, create_user, login


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return (
        int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)
    )


def tree_bytes(root: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size


def read_all(root: Path) -> float:
    start = time.perf_counter()
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                while f.read(1 << 20):
                    pass
    return time.perf_counter() - start


async def device_sync(
    server: ServerProcess, folder: str, root: Path, state: Path, device: str
) -> tuple[float, object]:
    async with aiohttp.ClientSession() as session:
        creds = await login(session, server.base_url, DEFAULT_USER, device_name=device)
    client = HttpClient(server.base_url, creds["token"])
    try:
        if folder not in [f["name"] for f in await client.list_folders()]:
            await client.create_folder(folder)
        (state / "tmp").mkdir(parents=True, exist_ok=True)
        (root / ".chunksync").mkdir(exist_ok=True)
        with Index.open(state / "index") as index:
            engine = SyncEngine(
                root,
                FolderKeys(bytes(range(32))),
                index,
                client.folder(folder),
                device=device,
                author="bench",
                tmpdir=state / "tmp",
            )
            start = time.perf_counter()
            result = await engine.sync()
            return time.perf_counter() - start, result
    finally:
        await client.aclose()


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1G")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "chunksync-bench"))
    ap.add_argument("--small-files", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="no-change sync repetitions")
    args = ap.parse_args()
    base = Path(args.dir)
    corpus = base / f"corpus-{args.size}"
    if not corpus.exists():
        print(f"generating corpus {args.size} in {corpus} ...", flush=True)
        make_corpus(corpus, parse_size(args.size))
    files, size = tree_bytes(corpus)
    mb = size / 1e6
    read_all(corpus)  # warm the page cache
    t_read = read_all(corpus)
    print(f"corpus: {files} files, {mb:.0f} MB; plain read {mb / t_read:.0f} MB/s")

    work = base / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = work / "server"
    data.mkdir()
    create_user(data, DEFAULT_USER)
    with ServerProcess(data) as server:
        folder_root = work / "corpus-folder"
        shutil.copytree(corpus, folder_root, symlinks=True)
        read_all(folder_root)
        t_sync, result = asyncio.run(
            device_sync(server, "bench", folder_root, folder_root / ".chunksync", "dev1")
        )
        print(
            f"chunksync initial sync: {t_sync:.1f} s, {mb / t_sync:.0f} MB/s "
            f"({result.uploaded_objects} objects, {result.uploaded_bytes / 1e6:.0f} MB sent); "
            f"ratio to plain read {t_read / t_sync:.2f}"
        )
        rows = [("chunksync", t_sync)]

        small = base / "small-20k"
        if not small.exists():
            make_small_tree(small, args.small_files)
        small_root = work / "small-folder"
        shutil.copytree(small, small_root)
        asyncio.run(device_sync(server, "small", small_root, small_root / ".chunksync", "dev2"))
        times = []
        for _ in range(args.repeat):
            t, r = asyncio.run(
                device_sync(server, "small", small_root, small_root / ".chunksync", "dev2")
            )
            assert not r.changed
            times.append(t)
        print(
            f"chunksync no-change sync of {args.small_files} files: median {statistics.median(times) * 1000:.0f} ms "
            f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times)})"
        )

    if shutil.which("restic"):
        repo = work / "restic-repo"
        env = {"RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(repo)}
        timed(["restic", "init"], env)
        t_restic = timed(["restic", "backup", "--quiet", str(corpus)], env)
        t_restic_again = timed(["restic", "backup", "--quiet", str(small)], env)
        t_restic_nochange = timed(["restic", "backup", "--quiet", str(small)], env)
        print(
            f"restic backup (same corpus): {t_restic:.1f} s, {mb / t_restic:.0f} MB/s; "
            f"chunksync/restic speed ratio {t_restic / t_sync:.2f}"
        )
        print(
            f"restic unchanged backup of {args.small_files} files: {t_restic_nochange * 1000:.0f} ms "
            f"(first {t_restic_again:.1f} s)"
        )
        rows.append(("restic", t_restic))
    if shutil.which("rsync"):
        t_rsync = timed(["rsync", "-a", f"{corpus}/", str(work / "rsync-copy")])
        print(
            f"rsync -a local copy: {t_rsync:.1f} s, {mb / t_rsync:.0f} MB/s; "
            f"chunksync/rsync speed ratio {t_rsync / t_sync:.2f}"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
