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
    ap.add_argument("what", choices=["nochange", "join"])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--full", action="store_true", help="join: the 1.1 GB corpus")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/chunksync-peers"))
    ap.add_argument("--out", type=Path, help="keep the raw profile here")
    ap.add_argument("--top", type=int, default=25)
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
                world.sync("a")
                world.cli("b", "--help")  # logs device b in, untimed
                device, cmd = "b", ["join", str(world.folder("b")), "--folder", "prof"]
            proc = run(
                [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "chunksync.cli", *cmd],
                env=world.env(device),
                cwd=REPO,
            )
        print(f"{' '.join(cmd[:1])}: {proc.seconds:.2f} s wall, peak RSS {proc.max_rss >> 20} MiB")
        stats = pstats.Stats(str(out))
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
