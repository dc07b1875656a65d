"""Run a range of seeds: the engine of ``tools/simulate.py`` and of the CI test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .scheduler import RunResult, make_schedule, run_schedule
from .shrink import Shrunk, shrink


@dataclass
class Report:
    schedules: int = 0
    steps: int = 0
    seed: int | None = None  # the first failing seed
    result: RunResult | None = None
    shrunk: Shrunk | None = None

    def summary(self) -> str:
        if self.result is None or self.result.violation is None:
            return f"{self.schedules} schedules, {self.steps} steps, all invariants held"
        v = self.result.violation
        return f"seed {self.seed} failed: {v.invariant}: {v.detail}"


def replay_command(seed: int, steps: int, devices: int, only: tuple[int, ...] | None = None) -> str:
    cmd = f".venv/bin/python tools/simulate.py --seeds {seed}:{seed + 1} --steps {steps} --devices {devices}"
    return cmd + (f" --only {','.join(map(str, only))}" if only is not None else "")


async def run_seeds(
    seeds: range,
    steps: int,
    devices: int,
    *,
    only: tuple[int, ...] | None = None,
    do_shrink: bool = True,
    progress: Callable[[int, RunResult], None] | None = None,
) -> Report:
    report = Report()
    for seed in seeds:
        schedule = make_schedule(seed, steps, devices)
        if only is not None:
            schedule = [schedule[i] for i in only if i < len(schedule)]
        result = await run_schedule(seed, schedule, devices)
        report.schedules += 1
        report.steps += len(schedule)
        if progress is not None:
            progress(seed, result)
        if result.violation is not None:
            report.seed, report.result = seed, result
            if do_shrink and only is None:
                report.shrunk = await shrink(
                    seed,
                    make_schedule(seed, steps, devices),
                    devices,
                    result.violation.invariant,
                    result.failed_at,
                )
            return report
    return report
