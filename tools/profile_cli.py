#!/usr/bin/env python3
"""Profile one whole ``chunksync`` command (cProfile) in the side-by-side suite's setting.

    .venv/bin/python tools/profile_cli.py nochange [--files 10000]
    .venv/bin/python tools/profile_cli.py join [--quick | --full]

``nochange``: a no-change ``chunksync sync`` of FILES tiny files (after a first sync).
``join``: a second device joining a folder that holds the suite's corpus. Both run the
CLI in its own process under ``python -m cProfile`` against a loopback server
subprocess, and print the top functions by cumulative and by own time; ``--out`` keeps
the raw profile for snakeviz/pstats. The server's own CPU is not in the profile.
"""

from __future__ import annotations

import argparse
import os
import pstats
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from peers import corpus as corpora
from peers.chunksync_runner import ChunksyncWorld
from peers.measure import run

from tests.helpers.corpus import make_small_tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["nochange", "join", "restore"])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--full", action="store_true", help="join: the 1.1 GB corpus")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/chunksync-peers"))
    ap.add_argument("--out", type=Path, help="keep the raw profile here")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="sample every thread with py-spy (pip install py-spy) into FILE (collapsed "
        "stacks, for flamegraph.pl or speedscope) instead of cProfile (main thread only)",
    )
    args = ap.parse_args()
    # a user's chunksync has its bytecode cached; without this every CLI process (whole-process
    # figures) would recompile the package first (this machine's shells set the variable)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="profile-cli-") as tmp:
        out = args.out or Path(tmp) / "cli.prof"
        with ChunksyncWorld(Path(tmp) / "world") as world:
            root = world.init("a", "prof")
            if args.what == "nochange":
                make_small_tree(root / "tree", args.files, per_dir=50, seed=7)
                world.sync("a")
                device, cmd = "a", ["sync", str(root)]
            else:
                spec = corpora.FULL if args.full else corpora.QUICK
                corpus = corpora.build(args.dir / spec.name, spec)
                corpora.copy_tree(corpus, Path(tmp) / "staging")
                for child in (Path(tmp) / "staging").iterdir():
                    child.rename(root / child.name)
                head = world.sync("a").head
                world.cli("b", "--help")  # logs device b in, untimed
                device, cmd = "b", ["join", str(world.folder("b")), "--folder", "prof"]
                if args.what == "restore":
                    device = "a"
                    cmd = ["restore", str(root), "--snapshot", head, "--to", f"{tmp}/restored"]
            if args.py_spy is not None:
                spy = Path(sys.executable).with_name("py-spy")
                prefix = [
                    str(spy),
                    "record",
                    "--threads",
                    "--idle",
                    "-r",
                    "200",
                    "-f",
                    os.environ.get("SPY_FORMAT", "raw"),
                ]
                prefix += ["-o", str(args.py_spy), "--", sys.executable]
            else:
                prefix = [sys.executable, "-m", "cProfile", "-o", str(out)]
            proc = run([*prefix, "-m", "chunksync.cli", *cmd], env=world.env(device), cwd=REPO)
        print(f"{' '.join(cmd[:1])}: {proc.seconds:.2f} s wall, peak RSS {proc.max_rss >> 20} MiB")
        if args.py_spy is not None:
            _print_collapsed(args.py_spy, args.top)
            return
        stats = pstats.Stats(str(out))
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)


def _print_collapsed(path: Path, top: int) -> None:
    """Per thread, the functions most often on the stack (inclusive) and at its top (own)."""
    inclusive: Counter[tuple[str, str]] = Counter()
    own: Counter[tuple[str, str]] = Counter()
    threads: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread, n = frames[0], int(count)
        threads[thread] += n
        for frame in set(frames[1:]):
            inclusive[thread, frame] += n
        own[thread, frames[-1]] += n
    for thread, total in threads.most_common(8):
        print(f"\n== {thread}: {total} samples")
        for title, counts in (("inclusive", inclusive), ("own", own)):
            rows = sorted(((n, f) for (t, f), n in counts.items() if t == thread), reverse=True)
            print(f"  -- {title}")
            for n, frame in rows[:top]:
                print(f"  {100 * n / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
