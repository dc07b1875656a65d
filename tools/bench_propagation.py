"""Propagation latency between two ``chunksync daemon`` processes on one loopback server.

Edits small files on device A and measures, for each, the time until device B holds the
new content (B's file polled every 2 ms), and the CPU time both daemons spent on it
(``/proc/PID/stat``, so a busy shared machine shows up as wall time, not as CPU). With
``--corpus-files N`` the folder also holds N small source files (the 20,000-file corpus
of :func:`tests.helpers.corpus.make_small_tree`), so the cost of the folder's size shows.

``--repo DIR`` (repeatable) runs the daemons from other checkouts too, *alternating*
between them in rounds of ``--edits`` on the same server and folders, so a before/after
comparison sees the same machine load::

    git archive main | tar -x -C /tmp/before
    .venv/bin/python tools/bench_propagation.py --corpus-files 20000 --repo /tmp/before --rounds 3

``--profile DIR`` records each daemon with py-spy during the edits (``DIR/<repo>-<device>.spy``,\ncollapsed stacks of every thread; ``pip install py-spy``).
``--baseline`` adds ``chunksync sync A && chunksync sync B`` (what a user gets without a
p90 < 0.5 s with the 20,000-file corpus in the folder.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chunksync.crypto import keyslots
from tests.helpers import daemons
from tests.helpers.cli_setup import CliWorld
from tests.helpers.corpus import make_small_tree
from tests.helpers.server import DEFAULT_USER, ServerProcess, create_user

TICKS = os.sysconf("SC_CLK_TCK")


class BenchDaemon(daemons.DaemonProcess):
    """A daemon started from ``repo`` (PYTHONPATH and cwd), optionally under cProfile."""

    def __init__(
        self, world: CliWorld, device: str, repo: Path, profile: Path | None, *args: str
    ) -> None:
        super().__init__(world, device, *args)
        self.repo, self.profile = repo, profile

    def start(self) -> BenchDaemon:
        prof: list[str] = []
        env = {**self.env(), "PYTHONPATH": str(self.repo)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    *prof,
                    "-m",
                    "chunksync.cli",
                    "daemon",
                    str(self.root),
                    *self.args,
                ],
                cwd=self.repo,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        return self

    def cpu(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICKS


def wait_content(path: Path, want: bytes, timeout: float = 120.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if path.stat().st_size == len(want) and path.read_bytes() == want:
                return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(0.002)
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


EDIT_DIRS = ("small", "src/pkg003/mod07")


def run_edits(
    w: CliWorld, repo: Path, n: int, tag: str, profile: Path | None
) -> tuple[list[float], list[float]]:
    a, b = w.folder("laptop"), w.folder("desktop")
    name = repo.name or "repo"
    args = ("--poll-interval", "30")
    prof = (lambda dev: profile / f"{name}-{dev}.prof") if profile else (lambda dev: None)
    lat, cpu = [], []
    with (
        BenchDaemon(w, "laptop", repo, prof("laptop"), *args) as da,
        BenchDaemon(w, "desktop", repo, prof("desktop"), *args) as db,
    ):
        da.wait_ready(300)
        db.wait_ready(300)
        da.wait_at_head(60)
        db.wait_at_head(60)
        spies = (
            [
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--format",
                        "raw",
                        "-o",
                        str(profile / f"{name}-{d.device}.spy"),
                        "-p",
                        str(d.proc.pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for d in (da, db)
            ]
            if profile
            else []
        )
        for i in range(n):
            rel = f"{EDIT_DIRS[i % 2 if (a / EDIT_DIRS[1]).is_dir() else 0]}/{tag}-{i % 5}.txt"
            (a / rel).parent.mkdir(parents=True, exist_ok=True)
            data = f"edit {tag} {i} {time.time_ns()}".encode()
            c0 = da.cpu() + db.cpu()
            t0 = time.monotonic()
            with open(a / rel, "wb") as fh:  # an ordinary save: open, write, close
                fh.write(data)
            lat.append(wait_content(b / rel, data) - t0)
            da.wait_at_head()
            db.wait_at_head()
            time.sleep(0.3)  # let both settle (the receiving side's own re-scan included)
            cpu.append(da.cpu() + db.cpu() - c0)
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    return lat, cpu


def summary(label: str, lat: list[float], cpu: list[float]) -> str:
    return (
        f"{label}: n={len(lat)} median {statistics.median(lat) * 1000:.0f} ms, "
        f"p90 {pct(lat, 0.9) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms, "
        f"CPU/propagation (both daemons) median {statistics.median(cpu) * 1000:.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=20, help="edits per round and checkout")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--corpus-files", type=int, default=0)
    ap.add_argument(
        "--repo", type=Path, action="append", default=[], help="another checkout to compare"
    )
    ap.add_argument("--profile", type=Path)
    ap.add_argument("--baseline", action="store_true")
    args = ap.parse_args()
    keyslots.DEFAULT_PARAMS = keyslots.MIN_PARAMS = keyslots.TEST_PARAMS  # cheap KDF for setup
    repos = [REPO, *[r.resolve() for r in args.repo]]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: dict[Path, tuple[list[float], list[float]]] = {r: ([], []) for r in repos}
    with tempfile.TemporaryDirectory(prefix="bench-prop-") as tmp:
        base = Path(tmp)
        (base / "server").mkdir()
        create_user(base / "server", DEFAULT_USER)
        with ServerProcess(base / "server") as server:
            w = CliWorld(server, base)
            w.folder("laptop").mkdir(parents=True)
            started = time.monotonic()
            if args.corpus_files:
                make_small_tree(w.folder("laptop") / "src", args.corpus_files)
            a = w.init("laptop")
            w.join("desktop")
            print(
                f"setup ({args.corpus_files} corpus files): {time.monotonic() - started:.1f} s",
                flush=True,
            )
            for rnd in range(args.rounds):
                for k, repo in enumerate(repos):
                    lat, cpu = run_edits(w, repo, args.edits, f"r{rnd}c{k}", args.profile)
                    results[repo][0].extend(lat)
                    results[repo][1].extend(cpu)
                    print(summary(f"  round {rnd} {repo}", lat, cpu), flush=True)
            if args.baseline:
                b = w.folder("desktop")
                base_lat = []
                for i in range(5):
                    data = f"baseline {i} {time.time_ns()}".encode()
                    t0 = time.monotonic()
                    (a / f"base-{i}.txt").write_bytes(data)
                    w.sync("laptop")
                    w.sync("desktop")
                    base_lat.append(wait_content(b / f"base-{i}.txt", data) - t0)
                print(
                    f"baseline 'sync A; sync B': median {statistics.median(base_lat) * 1000:.0f} ms"
                )
    for repo, (lat, cpu) in results.items():
        print(summary(f"{repo}", lat, cpu))


if __name__ == "__main__":
    main()
