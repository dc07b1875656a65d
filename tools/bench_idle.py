"""Idle cost of a ``chunksync daemon`` watching a large folder: CPU% and RSS.

Creates N files (default 20,000 in directories of 100), lets the daemon finish its
first sync, then samples its CPU time (``/proc/PID/stat``) over ``--seconds`` (default
60) and its RSS. The baseline, measured side by side on the same tree, is a bare
watchdog ``Observer`` process (the floor any inotify-based watcher pays).

    .venv/bin/python tools/bench_idle.py [--files 20000] [--seconds 60]

Goal: CPU < 1 % while idle.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chunksync.crypto import keyslots
from tests.helpers.cli_setup import CliWorld
from tests.helpers.daemons import DaemonProcess
from tests.helpers.server import DEFAULT_USER, ServerProcess, create_user

TICKS = os.sysconf("SC_CLK_TCK")
BARE_WATCHER = """
import sys, time
from watchdog.observers import Observer
from watchdog.events import FileSystemEventHandler
o = Observer(); o.schedule(FileSystemEventHandler(), sys.argv[1], recursive=True); o.start()
print("ready", flush=True)
while True: time.sleep(3600)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(pid: int, seconds: float) -> tuple[float, float]:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # the measurement window itself
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return 100 * (c1 - c0) / (t1 - t0), rss_mib(pid)


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        d = root / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(b"content %d\n" % i)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    keyslots.DEFAULT_PARAMS = keyslots.MIN_PARAMS = keyslots.TEST_PARAMS
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        base = Path(tmp)
        (base / "server").mkdir()
        create_user(base / "server", DEFAULT_USER)
        with ServerProcess(base / "server") as server:
            w = CliWorld(server, base)
            w.login("laptop")
            root = w.folder("laptop")
            make_tree(root, args.files)
            t0 = time.monotonic()
            w.run("laptop", "init", str(root), "--folder", "docs")
            init_s = time.monotonic() - t0

            bare = subprocess.Popen(
                [sys.executable, "-c", BARE_WATCHER, str(root)], stdout=subprocess.PIPE
            )
            assert bare.stdout is not None and bare.stdout.readline().strip() == b"ready"
            with DaemonProcess(w, "laptop") as d:
                t0 = time.monotonic()
                d.wait_ready(300)
                start_s = time.monotonic() - t0
                assert d.proc is not None
                cpu, rss = sample(d.proc.pid, args.seconds)
                bare_cpu, bare_rss = sample(bare.pid, min(args.seconds, 10))
            bare.kill()
            bare.wait()
    print(
        f"{args.files} files: init (first sync) {init_s:.1f} s; daemon start to first sync {start_s:.1f} s"
    )
    print(
        f"idle daemon over {args.seconds:.0f} s: CPU {cpu:.2f} %, RSS {rss:.0f} MiB   [goal: CPU < 1 %]"
    )
    print(
        f"baseline bare watchdog observer: CPU {bare_cpu:.2f} %, RSS {bare_rss:.0f} MiB "
        f"-> RSS ratio {rss / max(bare_rss, 1):.1f}x"
    )


if __name__ == "__main__":
    main()
