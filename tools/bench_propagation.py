"""Propagation latency between two ``chunksync daemon`` processes on one loopback server.

Edits small files on device A and measures, for each, the time until device B holds the
new content (B's file polled every 5 ms); then a 1-byte edit inside a large file. The
baseline, measured side by side on the same server and folders with the daemons
stopped, is what a user gets without a daemon: ``chunksync sync A && chunksync sync B``.

    .venv/bin/python tools/bench_propagation.py [--edits 20] [--big-mib 200]

Goal: small files median < 1 s, p90 < 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chunksync.crypto import keyslots  # noqa: E402
from tests.helpers.cli_setup import CliWorld  # noqa: E402
from tests.helpers.daemons import DaemonProcess  # noqa: E402
from tests.helpers.server import DEFAULT_USER, ServerProcess, create_user  # noqa: E402


def wait_content(path: Path, want: bytes, timeout: float = 120.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if path.stat().st_size == len(want) and path.read_bytes() == want:
                return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {path}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def edit_big(path: Path, offset: int) -> bytes:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        old = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([old[0] ^ 0xFF]))
    return path.read_bytes()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--baseline-edits", type=int, default=5)
    ap.add_argument("--big-mib", type=int, default=200)
    args = ap.parse_args()
    keyslots.DEFAULT_PARAMS = keyslots.MIN_PARAMS = keyslots.TEST_PARAMS  # cheap KDF for setup
    with tempfile.TemporaryDirectory(prefix="bench-prop-") as tmp:
        base = Path(tmp)
        (base / "server").mkdir()
        create_user(base / "server", DEFAULT_USER)
        with ServerProcess(base / "server") as server:
            w = CliWorld(server, base)
            a, b = w.init("laptop"), w.join("desktop")
            big = a / "big.bin"
            with open(big, "wb") as fh:
                for _ in range(args.big_mib):
                    fh.write(__import__("os").urandom(1 << 20))

            # baseline: no daemon, a sync on each side
            base_lat = []
            for i in range(args.baseline_edits):
                data = f"baseline {i} {time.time_ns()}".encode()
                t0 = time.monotonic()
                (a / f"base-{i}.txt").write_bytes(data)
                w.sync("laptop")
                w.sync("desktop")
                base_lat.append(wait_content(b / f"base-{i}.txt", data) - t0)
            t0 = time.monotonic()
            data = edit_big(big, args.big_mib << 19)
            w.sync("laptop")
            w.sync("desktop")
            base_big = wait_content(b / "big.bin", data) - t0

            with DaemonProcess(w, "laptop", "--quiet-ms", "150") as da, \
                    DaemonProcess(w, "desktop", "--quiet-ms", "150") as db:
                da.wait_ready(120)
                db.wait_ready(120)
                lat = []
                for i in range(args.edits):
                    data = f"edit {i} {time.time_ns()}".encode()
                    t0 = time.monotonic()
                    (a / "small" / f"f{i % 5}.txt").parent.mkdir(exist_ok=True)
                    (a / "small" / f"f{i % 5}.txt").write_bytes(data)
                    lat.append(wait_content(b / "small" / f"f{i % 5}.txt", data) - t0)
                    da.wait_at_head()
                    db.wait_at_head()
                t0 = time.monotonic()
                data = edit_big(big, 12345)
                big_lat = wait_content(b / "big.bin", data, 300) - t0

    med, p90 = statistics.median(lat), pct(lat, 0.9)
    bmed = statistics.median(base_lat)
    print(f"small-file edits (n={len(lat)}): median {med * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
          f"max {max(lat) * 1000:.0f} ms   [goal: median < 1000, p90 < 2000]")
    print(f"baseline 'sync A; sync B' (n={len(base_lat)}): median {bmed * 1000:.0f} ms "
          f"-> daemon/baseline = {med / bmed:.2f}")
    print(f"1-byte edit in a {args.big_mib} MiB file: daemon {big_lat:.2f} s, baseline {base_big:.2f} s "
          f"-> ratio {big_lat / base_big:.2f}")


if __name__ == "__main__":
    main()
