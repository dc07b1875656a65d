"""Shrink a failing schedule: drop steps while the same invariant still fails.

A delta-debugging pass (chunks of half the schedule, then quarters, … then single
steps), bounded by a number of runs. Steps keep their own sub-seeds, so a schedule
with steps removed runs as a schedule in its own right, and the shrunk one replays
with ``tools/simulate.py --seeds S:S+1 --only I,J,K``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .scheduler import RunResult, Step, run_schedule


@dataclass(frozen=True)
class Shrunk:
    indices: tuple[int, ...]  # positions in the original schedule
    result: RunResult
    runs: int


async def shrink(
    seed: int,
    schedule: list[Step],
    devices: int,
    invariant: str,
    failed_at: int | None,
    budget: int = 150,
) -> Shrunk:
    keep = list(range(len(schedule)))
    if failed_at is not None and failed_at < len(schedule):
        keep = keep[: failed_at + 1]  # steps after the failing one never ran
    runs = 0
    best: RunResult | None = None

    async def fails(candidate: list[int]) -> RunResult | None:
        nonlocal runs
        runs += 1
        result = await run_schedule(seed, [schedule[i] for i in candidate], devices)
        return result if result.violation and result.violation.invariant == invariant else None

    chunk = max(len(keep) // 2, 1)
    while chunk >= 1 and runs < budget:
        start = 0
        while start < len(keep) and runs < budget:
            candidate = keep[:start] + keep[start + chunk :]
            result = await fails(candidate) if candidate else None
            if result is not None:
                keep, best = candidate, result
            else:
                start += chunk
        chunk //= 2
    if best is None:
        best = await run_schedule(seed, [schedule[i] for i in keep], devices)
    return Shrunk(tuple(keep), best, runs)
