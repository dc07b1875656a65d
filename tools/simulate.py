#!/usr/bin/env python3
"""Run the deterministic simulator (tests/sim, docs/reliability.md) over a range of seeds.

Each seed is one schedule: devices edit, sync, crash and meet a faulty and sometimes
hostile server; every invariant is checked after every step and at quiescence. The
last line is either ``N schedules, M steps, all invariants held`` or the first failing
seed and invariant, after a one-line replay command and the shrunk trace.

    .venv/bin/python tools/simulate.py --seeds 0:500 [--steps 50] [--devices 3]
    .venv/bin/python tools/simulate.py --seeds 17:18 --only 3,9,12 --trace
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sim.runner import replay_command, run_seeds
from tests.sim.scheduler import RunResult


def seed_range(text: str) -> range:
    start, sep, stop = text.partition(":")
    if not sep or not start.isdigit() or not stop.isdigit() or int(stop) <= int(start):
        raise argparse.ArgumentTypeError("--seeds takes A:B with integers A < B")
    return range(int(start), int(stop))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds", type=seed_range, default=range(100), help="seed range A:B (B excluded)"
    )
    parser.add_argument("--steps", type=int, default=50, help="steps per schedule (default 50)")
    parser.add_argument("--devices", type=int, default=3, help="devices per schedule (default 3)")
    parser.add_argument(
        "--only", help="run only these step indices of the schedule (a shrunk replay)"
    )
    parser.add_argument("--trace", action="store_true", help="print each schedule's trace")
    parser.add_argument(
        "--no-shrink", action="store_true", help="report a failure without shrinking it"
    )
    args = parser.parse_args(argv)
    only = tuple(int(i) for i in args.only.split(",")) if args.only else None
    started = time.monotonic()

    def progress(seed: int, result: RunResult) -> None:
        if args.trace:
            print(f"# seed {seed} trace {result.trace.digest()[:16]}\n{result.trace.text()}")
        elif seed % 100 == 99:
            print(
                f"... seed {seed} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True
            )

    report = asyncio.run(
        run_seeds(
            args.seeds,
            args.steps,
            args.devices,
            only=only,
            do_shrink=not args.no_shrink,
            progress=progress,
        )
    )
    if report.seed is not None and report.result is not None:
        print(f"replay: {replay_command(report.seed, args.steps, args.devices, only)}")
        if report.shrunk is not None:
            shrunk = report.shrunk
            print(
                f"shrunk to {len(shrunk.indices)} step(s) in {shrunk.runs} runs: "
                f"{replay_command(report.seed, args.steps, args.devices, shrunk.indices)} --trace"
            )
            print(shrunk.result.trace.text())
    sys.stdout.flush()
    print(f"({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    print(report.summary())
    return 0 if report.seed is None else 1


if __name__ == "__main__":
    sys.exit(main())
