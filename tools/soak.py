#!/usr/bin/env python3
"""Soak: two real daemons on one real server, thousands of random edits, for minutes.

    .venv/bin/python tools/soak.py [--minutes 20] [--files 2000] [--dirs 1] [--rate 3]
                                   [--sample 15] [--warmup-minutes 5] [--keep DIR]
    .venv/bin/python tools/soak.py --verdict-from SAVED_OUTPUT   # judge a saved run again

Sets up a folder of ``--files`` small files (in ``--dirs`` directories: one reproduces
issue 11's worst case, a single 2,000-entry listing rewritten on every edit) on two
devices, starts ``chunksync daemon`` for each, then edits at ``--rate`` edits a second
(each device its own half of the files, so no conflicts pile up copies; one edit in
ten deletes a file or creates one) for ``--minutes``. Every ``--sample`` seconds it
records, per device, the index file size (``data.mdb``), the object-cache entries and
bytes, and the daemon's RSS. At the end it waits for both daemons to converge, checks
the two trees are equal, prints the samples as a table and one verdict line. The first
``--warmup-minutes`` (the cache filling up to its bound) are left out; of the rest:

    verdict: FLAT ...     the peak of the last third is within 10% (+ slack: 2 MB for
                          the index and cache, 16 MB for RSS) of the peak of the first
                          third, for every figure on both devices; slopes in MB/h
    verdict: GROWING ...  otherwise (names what grew)

Outside the timed test suite: it takes as long as you ask.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lmdb
import psutil

from chunksync.crypto import keyslots
from tests.helpers.cli_setup import CliWorld
from tests.helpers.daemons import DaemonProcess, wait_until
from tests.helpers.devices import tree_of
from tests.helpers.server import DEFAULT_USER, ServerProcess, create_user

DEVICES = ("laptop", "desktop")
MB = 1 << 20


@dataclass(frozen=True)
class Sample:
    t: float
    edits: int
    index_bytes: tuple[int, int]
    objects: tuple[int, int]
    object_bytes: tuple[int, int]
    rss: tuple[int, int]


def index_figures(root: Path) -> tuple[int, int, int]:
    """(data.mdb bytes, object-cache entries, object-cache page bytes), read-only."""
    path = root / ".chunksync" / "index"
    size = (path / "data.mdb").stat().st_size
    env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=16, subdir=True)
    try:
        with env.begin() as txn:
            st = txn.stat(env.open_db(b"objects", txn=txn, create=False))
    finally:
        env.close()
    return (
        size,
        st["entries"],
        st["psize"] * (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]),
    )


def rss_of(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    return int(psutil.Process(daemon.proc.pid).memory_info().rss)


def populate(root: Path, files: int, dirs: int, rng: random.Random) -> list[str]:
    names = [f"d{i % dirs:02}/file-{i:05}.txt" for i in range(files)]
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(64, 2048)))
    return names


class Editor:
    """Random edits on one device's share of the files (writes, deletes, creates)."""

    def __init__(self, root: Path, names: list[str], tag: str, rng: random.Random) -> None:
        self.root, self.names, self.tag, self.rng = root, list(names), tag, rng
        self.created = 0

    def edit(self) -> None:
        roll = self.rng.random()
        if roll < 0.05 and len(self.names) > 10:
            name = self.names.pop(self.rng.randrange(len(self.names)))
            (self.root / name).unlink(missing_ok=True)
        elif roll < 0.10:
            self.created += 1
            folder = self.rng.choice(self.names).split("/")[0]
            name = f"{folder}/new-{self.tag}-{self.created:05}.txt"
            (self.root / name).write_bytes(self.rng.randbytes(self.rng.randint(64, 2048)))
            self.names.append(name)
        else:
            name = self.rng.choice(self.names)
            tmp = self.root / (name + ".part")  # ignored by default: an atomic save
            tmp.write_bytes(self.rng.randbytes(self.rng.randint(64, 4096)))
            os.replace(tmp, self.root / name)


FIGURES = {  # name -> (value of a sample for device i, slack in bytes)
    "index": (lambda s, i: s.index_bytes[i], 2 * MB),
    "cache": (lambda s, i: s.object_bytes[i], 2 * MB),
    "rss": (lambda s, i: s.rss[i], 16 * MB),
}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (units per second) of (t, value) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 0.0 if den == 0 else sum((t - mt) * (v - mv) for t, v in points) / den


def verdict(samples: list[Sample], warmup: float) -> str:
    """After the first ``warmup`` seconds (the cache filling up to its bound), FLAT if
    the peak of the last third of the samples is within 10% (plus slack) of the peak of
    the first third, for every figure and device; GROWING naming what did not. The
    slope over everything after the warm-up is printed too."""
    after = [s for s in samples if s.t >= warmup] or samples
    third = max(1, len(after) // 3)
    first, last = after[:third], after[-third:]
    grew, parts = [], []
    for name, (get, slack) in FIGURES.items():
        for i, device in enumerate(DEVICES):
            peak = max(get(s, i) for s in first)
            end = max(get(s, i) for s in last)
            per_hour = slope([(s.t, get(s, i)) for s in after]) * 3600
            parts.append(
                f"{name} {device} {peak / MB:.1f}->{end / MB:.1f} MB ({per_hour / MB:+.1f} MB/h)"
            )
            if end > peak * 1.10 + slack:
                grew.append(f"{name} {device}")
    head = "FLAT" if not grew else "GROWING (" + ", ".join(grew) + ")"
    return (
        f"verdict: {head}: after {warmup / 60:.0f} min of warm-up, peak of the first third -> "
        "last third: " + "; ".join(parts)
    )


def parse_table(text: str) -> list[Sample]:
    """The samples of a table printed by this tool (to judge a saved run again)."""
    out: list[Sample] = []
    for line in text.splitlines():
        left, bar, right = line.partition("|")
        head = left.split()
        if not bar or len(head) != 2 or not head[1].isdigit():
            continue
        cols = [c.split("/") for c in right.split()]
        if len(cols) != 4:
            continue
        ib, ob, cb, rb = ([float(x) for x in c] for c in cols)
        sample = Sample(
            float(head[0]) * 60,
            int(head[1]),
            (int(ib[0] * MB), int(ib[1] * MB)),
            (int(ob[0]), int(ob[1])),
            (int(cb[0] * MB), int(cb[1] * MB)),
            (int(rb[0] * MB), int(rb[1] * MB)),
        )
        if not out or sample.t > out[-1].t:
            out.append(sample)
    return out


HEADER = (
    f"{'min':>6} {'edits':>7} | {'index MB (A/B)':>15} {'objects (A/B)':>15} "
    f"{'cache MB (A/B)':>15} {'RSS MB (A/B)':>15}"
)


def row(s: Sample) -> str:
    return (
        f"{s.t / 60:6.1f} {s.edits:7d} | "
        f"{s.index_bytes[0] / MB:7.1f}/{s.index_bytes[1] / MB:<7.1f} "
        f"{s.objects[0]:7d}/{s.objects[1]:<7d} "
        f"{s.object_bytes[0] / MB:7.1f}/{s.object_bytes[1] / MB:<7.1f} "
        f"{s.rss[0] / MB:7.1f}/{s.rss[1] / MB:<7.1f}"
    )


def print_table(samples: list[Sample]) -> None:
    print(HEADER)
    for s in samples:
        print(row(s))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--dirs", type=int, default=1)
    ap.add_argument(
        "--rate", type=float, default=3.0, help="edits per second, both devices together"
    )
    ap.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    ap.add_argument(
        "--warmup-minutes",
        type=float,
        default=5.0,
        help="minutes the cache takes to fill up to its bound, left out of the verdict",
    )
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument(
        "--keep", type=Path, help="work in this directory and keep it (default: a temp dir)"
    )
    ap.add_argument(
        "--verdict-from",
        type=Path,
        metavar="LOG",
        help="only judge the table printed by an earlier run (its saved output)",
    )
    args = ap.parse_args()
    if args.verdict_from:
        samples = parse_table(args.verdict_from.read_text())
        print_table(samples)
        print(verdict(samples, args.warmup_minutes * 60))
        return
    keyslots.DEFAULT_PARAMS = keyslots.MIN_PARAMS = keyslots.TEST_PARAMS  # cheap KDF for setup
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        (base / "server").mkdir()
        create_user(base / "server", DEFAULT_USER)
        with ServerProcess(base / "server") as server:
            w = CliWorld(server, base)
            w.login("laptop")
            a = w.folder("laptop")
            a.mkdir(parents=True)
            names = populate(a, args.files, args.dirs, rng)
            started = time.monotonic()
            w.run("laptop", "init", str(a), "--folder", "docs")
            b = w.join("desktop")
            print(
                f"set up {args.files} files in {args.dirs} dir(s) on two devices in "
                f"{time.monotonic() - started:.0f} s; editing {args.rate}/s for {args.minutes} min",
                flush=True,
            )
            editors = [
                Editor(a, names[0::2], "a", random.Random(rng.random())),
                Editor(b, names[1::2], "b", random.Random(rng.random())),
            ]
            daemon_args = ("--quiet-ms", "150", "--max-delay-ms", "1000", "--poll-interval", "5")
            with (
                DaemonProcess(w, "laptop", *daemon_args) as da,
                DaemonProcess(w, "desktop", *daemon_args) as db,
            ):
                daemons = (da, db)
                da.wait_ready(300)
                db.wait_ready(300)
                samples: list[Sample] = []
                edits = 0
                t0 = time.monotonic()
                end = t0 + args.minutes * 60
                next_sample = t0
                next_edit = t0
                while (now := time.monotonic()) < end:
                    if now >= next_sample:
                        figs = [index_figures(d) for d in (a, b)]
                        samples.append(
                            Sample(
                                now - t0,
                                edits,
                                (figs[0][0], figs[1][0]),
                                (figs[0][1], figs[1][1]),
                                (figs[0][2], figs[1][2]),
                                (rss_of(da), rss_of(db)),
                            )
                        )
                        if len(samples) == 1:
                            print(HEADER)
                        print(row(samples[-1]), flush=True)
                        next_sample += args.sample
                    if now >= next_edit:
                        rng.choice(editors).edit()
                        edits += 1
                        next_edit += rng.expovariate(args.rate)
                    time.sleep(max(0.0, min(next_edit, next_sample, end) - time.monotonic()))
                print(f"edits done ({edits}); waiting for convergence", flush=True)
                converged = True
                try:
                    wait_until(
                        lambda: (
                            tree_of(a, mtimes=False) == tree_of(b, mtimes=False)
                            and all(d.status()["at_head"] for d in daemons)
                        ),
                        timeout=300,
                        interval=1.0,
                        what="convergence",
                    )
                except AssertionError as exc:
                    converged = False
                    print(f"NOT CONVERGED: {exc}")
                upkeep = [len(d.events("index_upkeep")) for d in daemons]
                errors = [len(d.events("error")) for d in daemons]
                last_gc = [d.events("index_upkeep")[-1:] for d in daemons]
        print()
        print_table(samples)
        print(
            f"index upkeep passes (A/B): {upkeep[0]}/{upkeep[1]}; error lines: {errors[0]}/{errors[1]}"
        )
        for device, gc in zip(DEVICES, last_gc, strict=True):
            if gc:
                print(
                    f"last upkeep on {device}: {json.dumps({k: v for k, v in gc[0].items() if k != 'time'})}"
                )
        files = sum(1 for d in tree_of(a).values() if d[0] == "file")
        print(
            f"converged: {'yes' if converged else 'NO'} ({files} files, {edits} edits in {args.minutes} min)"
        )
        print(verdict(samples, args.warmup_minutes * 60))
        if not converged:
            sys.exit(1)


if __name__ == "__main__":
    main()
