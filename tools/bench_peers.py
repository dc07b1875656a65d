#!/usr/bin/env python3
"""chunksync side by side with restic, rsync, Syncthing and git: one command, one table.

    .venv/bin/python tools/bench_peers.py --quick     # < 5 min: 100 MiB corpus, 2 repetitions
    .venv/bin/python tools/bench_peers.py --full      # issue 12's 1.1 GB corpus, 3 repetitions

Builds the seeded corpus (kept in --dir for the next run), installs restic, rsync and
Syncthing from Debian packages where missing (as root), runs chunksync and each peer
alternately on the same data and prints, per scenario, chunksync's and the peer's median
and min–max, the ratio per pair of alternating runs (median and min–max), issue 12's
target and pass/miss. Scenarios (--only): backup (initial, incremental time and bytes,
no-change, restore, join, peak RSS), many (N-file no-change sync), propagation (vs
Syncthing at 1 s delay), history (server bytes vs git's pack of the same commits).
Method and results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from peers import corpus as corpora
from peers.backup_scenarios import backup_rows, many_files_row, run_backup_scenarios
from peers.history import history_row
from peers.install import ensure_peers, versions
from peers.propagation import propagation_row
from peers.report import Row, render, to_json

SCENARIOS = ("backup", "many", "propagation", "history")
MODES = {
    "quick": {"spec": corpora.QUICK, "reps": 2, "many": 10_000, "edits": 8, "commits": 20},
    "full": {"spec": corpora.FULL, "reps": 3, "many": 100_000, "edits": 20, "commits": 120},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="small corpus, 2 repetitions, under 5 minutes (the default)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="the 1.1 GB corpus (20,000 small, 200 medium, 3 large files)",
    )
    ap.add_argument(
        "--dir",
        type=Path,
        default=Path("/tmp/chunksync-peers"),
        help="work directory; the corpus is kept here between runs",
    )
    ap.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {', '.join(SCENARIOS)}",
    )
    ap.add_argument("--reps", type=int, help="repetitions of the one-shot scenarios")
    ap.add_argument("--many-files", type=int, help="files of the no-change-sync tree")
    ap.add_argument("--edits", type=int, help="propagation edits per tool")
    ap.add_argument(
        "--commits",
        type=int,
        help="history replay: oldest N first-parent commits (a fixed N keeps the replay deterministic)",
    )
    ap.add_argument("--history-repo", type=Path, default=REPO, help="git repo to replay")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    args = ap.parse_args(argv)
    args.mode = args.mode or "quick"
    preset = MODES[args.mode]
    for name, key in (
        ("reps", "reps"),
        ("many_files", "many"),
        ("edits", "edits"),
        ("commits", "commits"),
    ):
        if getattr(args, name) is None:
            setattr(args, name, preset[key])
    args.spec = corpora.CorpusSpec(
        preset["spec"].small,
        preset["spec"].medium,
        preset["spec"].large,
        preset["spec"].total,
        args.seed,
    )
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    if args.reps < 1 or args.edits < 2:
        ap.error("--reps must be ≥ 1 and --edits ≥ 2")
    return args


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # a user's chunksync has its bytecode cached; without this every CLI process (whole-process
    # figures) would recompile the package first (this machine's shells set the variable)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    tools = [
        "git",
        *(["restic", "rsync"] if "backup" in args.only else []),
        *(["syncthing"] if "propagation" in args.only else []),
    ]
    ensure_peers(tools, log)
    started, load0 = time.monotonic(), os.getloadavg()
    args.dir.mkdir(parents=True, exist_ok=True)
    corpus = args.dir / args.spec.name
    described = "no corpus"
    if {"backup", "propagation"} & set(args.only):
        log(f"corpus {corpus} ...")
        corpora.build(corpus, args.spec)
        files, size = corpora.tree_size(corpus)
        described = f"corpus {files:,} files, {size / 1e6:,.0f} MB (seed {args.seed})"
    work = args.dir / "run"
    rows: list[Row] = []
    label = "the chunksync repo" if args.history_repo == REPO else args.history_repo.name
    steps: dict[str, Callable[[], list[Row]]] = {
        "backup": lambda: backup_rows(
            run_backup_scenarios(corpus, work / "backup", args.reps, log)
        ),
        "many": lambda: [many_files_row(work, args.many_files, max(args.reps, 3), log)],
        "propagation": lambda: [
            propagation_row(corpus / "src", work / "propagation", args.edits, log)
        ],
        "history": lambda: [
            history_row(args.history_repo, work / "history", args.commits, log, label)
        ],
    }
    for name in SCENARIOS:
        if name in args.only:
            log(f"{name} ...")
            began = time.monotonic()
            rows += steps[name]()
            log(f"{name} done in {time.monotonic() - began:.0f} s")
    load1 = os.getloadavg()
    print(
        f"chunksync side by side ({args.mode}): {described}; "
        f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}; load average {load0[0]:.1f} at start, "
        f"{load1[0]:.1f} at end; {time.monotonic() - started:.0f} s"
    )
    print("peers: " + "; ".join(f"{k}: {v}" for k, v in versions(tools).items()))
    print()
    print(render(rows))
    if args.json:
        args.json.write_text(to_json(rows))
    misses = sum(r.verdict() == "**miss**" for r in rows)
    print(f"\n{misses} of {sum(bool(r.targets) for r in rows)} targets missed")
    if args.mode == "quick":
        print("(quick mode: issue 12's targets are for --full; a quick run is indicative)")


if __name__ == "__main__":
    main()
