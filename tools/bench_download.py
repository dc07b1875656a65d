#!/usr/bin/env python3
"""Benchmark the download path: a second device's first sync (``join``) and ``restore``
of a mixed corpus, beside ``restic restore`` of the same data, plus the initial sync's
peak RSS and what the first sync after the join reads again.

Every measured step runs in its own child process (so peak RSS is the step's own), and
the code under test is chosen per step with ``--code DIR`` (repeatable): two trees (say
a checkout of ``main`` and this worktree) are run alternately on the same server and
corpus, because the machine is shared and only ratios between neighbouring runs mean
anything.

    .venv/bin/python tools/bench_download.py --size 1G --code /tmp/base --code . --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
KEY = bytes(range(32))


# --- child side: one step, in the code tree given by CHUNKSYNC_CODE -------------------
async def _engine(server: str, token: str, folder: str, root: Path, device: str) -> dict:
    from chunksync.crypto.folder_keys import FolderKeys
    from chunksync.storage.index import Index
    from chunksync.sync.engine import SyncEngine
    from chunksync.transport.http import HttpClient

    state = root / ".chunksync"
    (state / "tmp").mkdir(parents=True, exist_ok=True)
    client = HttpClient(server, token)
    try:
        with Index.open(state / "index") as index:
            engine = SyncEngine(
                root,
                FolderKeys(KEY),
                index,
                client.folder(folder),
                device=device,
                author="bench",
                tmpdir=state / "tmp",
            )
            start = time.perf_counter()
            result = await engine.sync()
            took = time.perf_counter() - start
            return {
                "seconds": took,
                "files_read": result.scan.files_read,
                "bytes_read": result.scan.bytes_read,
                "applied": result.applied,
            }
    finally:
        await client.aclose()


async def _restore(server: str, token: str, folder: str, state: Path, out: Path) -> dict:
    from chunksync.crypto.folder_keys import FolderKeys
    from chunksync.history import find_snapshot, list_snapshots, restore
    from chunksync.storage.index import Index
    from chunksync.sync.objects_io import ObjectReader
    from chunksync.transport.http import HttpClient

    state.mkdir(parents=True, exist_ok=True)
    client = HttpClient(server, token)
    try:
        with Index.open(state / "index") as index:
            reader = ObjectReader(FolderKeys(KEY), index, client.folder(folder))
            start = time.perf_counter()
            snaps = await list_snapshots(reader)
            snap = await find_snapshot(reader, snaps, snaps[-1].id, None)
            count = await restore(reader, snap, (), out)
            return {"seconds": time.perf_counter() - start, "applied": count}
    finally:
        await client.aclose()


def child(args: list[str]) -> None:
    op, server, token, folder, a, b = args
    if op == "sync":
        doc = asyncio.run(_engine(server, token, folder, Path(a), b))
    else:
        doc = asyncio.run(_restore(server, token, folder, Path(a), Path(b)))
    print(json.dumps(doc))


# --- parent side ---------------------------------------------------------------------
def run_child(code: Path, *args: str) -> dict:
    """Run one step in a child using ``code``; returns its figures plus its peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", *args], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # reap here: wait4 gives this child's rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"step {args[0]} failed with {code}")
    doc = json.loads(out.strip().splitlines()[-1])
    doc["rss_mib"] = usage.ru_maxrss / 1024
    doc["cpu"] = usage.ru_utime + usage.ru_stime
    return doc


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    cmd: list[str], env: dict[str, str], cwd: Path | None = None
) -> tuple[float, float, float]:
    """Seconds, peak RSS (MiB) and CPU seconds of one external command."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} {cmd[1]} failed")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    sys.path.insert(0, str(HERE))
    import aiohttp

    from tests.helpers.corpus import make_corpus
    from tests.helpers.server import DEFAULT_USER, ServerProcess, create_user, login

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1G")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "chunksync-bench-dl"))
    ap.add_argument("--code", action="append", type=Path, help="code tree(s) to compare")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    codes = [c.resolve() for c in (args.code or [HERE])]
    base = Path(args.dir)
    corpus = base / f"corpus-{args.size}"
    if not corpus.exists():
        sys.path.insert(0, str(HERE / "tools"))
        from gen_corpus import parse_size

        make_corpus(corpus, parse_size(args.size))
    work = base / "run"
    shutil.rmtree(work, ignore_errors=True)
    (work / "server").mkdir(parents=True)
    create_user(work / "server", DEFAULT_USER)
    rows: dict[tuple[str, str], list[float]] = {}

    def note(what: str, who: str, value: float) -> None:
        rows.setdefault((what, who), []).append(value)

    with ServerProcess(work / "server") as server:

        async def token(device: str) -> str:
            async with aiohttp.ClientSession() as session:
                creds = await login(session, server.base_url, DEFAULT_USER, device_name=device)
            from chunksync.transport.http import HttpClient

            client = HttpClient(server.base_url, creds["token"])
            try:
                have = [f["name"] for f in await client.list_folders()]
                for name in ["bench", *(f"init{i}" for i in range(len(codes)))]:
                    if name not in have:
                        await client.create_folder(name)
            finally:
                await client.aclose()
            return str(creds["token"])

        tok = asyncio.run(token("dev1"))
        restic = shutil.which("restic")
        renv = {"RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(work / "restic-repo")}
        if restic:
            measure([restic, "init"], renv)
        for i, code in enumerate(codes):  # initial sync (own server folder each) vs restic backup
            src = work / "src"
            shutil.copytree(corpus, src)
            server_cpu = cpu_of(server.proc.pid)
            if i == len(codes) - 1:
                first = run_child(code, "sync", server.base_url, tok, "bench", str(src), "dev1")
            else:
                first = run_child(code, "sync", server.base_url, tok, f"init{i}", str(src), "dev1")
            note("initial sync", f"{i}:{code.name}", first["seconds"])
            note(
                "initial sync CPU s (client+server)",
                f"{i}:{code.name}",
                first["cpu"] + cpu_of(server.proc.pid) - server_cpu,
            )
            note("initial sync peak RSS MiB", f"{i}:{code.name}", first["rss_mib"])
            shutil.rmtree(src)
            if restic and i == 0:
                t, rss, cpu = measure([restic, "backup", "--quiet", "."], renv, cwd=corpus)
                note("initial sync CPU s (client+server)", "restic backup", cpu)
                note("initial sync", "restic backup", t)
                note("initial sync peak RSS MiB", "restic backup", rss)
            print(
                f"initial sync {code.name}: {first['seconds']:.1f} s, peak RSS {first['rss_mib']:.0f} MiB",
                flush=True,
            )
        for r in range(args.rounds):
            for i, code in enumerate(codes):
                who = f"{i}:{code.name}"
                dev = f"j{r}{i}"
                jroot = work / dev
                jroot.mkdir()
                server_cpu = cpu_of(server.proc.pid)
                j = run_child(code, "sync", server.base_url, tok, "bench", str(jroot), dev)
                note(
                    "join CPU s (client+server)",
                    who,
                    j["cpu"] + cpu_of(server.proc.pid) - server_cpu,
                )
                again = run_child(code, "sync", server.base_url, tok, "bench", str(jroot), dev)
                note("join", who, j["seconds"])
                note("join peak RSS MiB", who, j["rss_mib"])
                note("sync after join: bytes read", who, again["bytes_read"])
                shutil.rmtree(jroot)
                if restic:
                    out = work / "restic-out"
                    t, rss, cpu = measure([restic, "restore", "latest", "--target", str(out)], renv)
                    note("restic restore", "restic", t)
                    note("restic restore CPU s", "restic", cpu)
                    shutil.rmtree(out)
                out = work / f"restore-{dev}"
                server_cpu = cpu_of(server.proc.pid)
                rs = run_child(
                    code,
                    "restore",
                    server.base_url,
                    tok,
                    "bench",
                    str(work / f"st-{dev}"),
                    str(out),
                )
                note("restore", who, rs["seconds"])
                note(
                    "restore CPU s (client+server)",
                    who,
                    rs["cpu"] + cpu_of(server.proc.pid) - server_cpu,
                )
                shutil.rmtree(out)
                shutil.rmtree(work / f"st-{dev}")
                print(
                    f"round {r} {who}: join {j['seconds']:.1f} s (next sync read {again['bytes_read']} B), "
                    f"restore {rs['seconds']:.1f} s"
                    + (
                        f", restic restore {rows[('restic restore', 'restic')][-1]:.1f} s"
                        if restic
                        else ""
                    ),
                    flush=True,
                )
    print("\n| step | code | median | runs |\n| --- | --- | --- | --- |")
    for (what, who), vals in rows.items():
        print(
            f"| {what} | {who} | {statistics.median(vals):.2f} | {', '.join(f'{v:.2f}' for v in vals)} |"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
