"""Run one command as a child process and measure it: wall time and peak RSS.

Every timed step of the suite is a whole process (``chunksync sync``, ``restic backup``,
``rsync``), so start-up is part of the figure, as it is for a user. The peak RSS comes from
``os.wait4`` on that very child (the kernel's ``ru_maxrss``, which also covers the children
it reaped), not from ``RUSAGE_CHILDREN``, which only ever grows over the whole suite.
Output goes to temporary files rather than pipes, so nothing but ``wait4`` reaps the child.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CommandFailed", "Run", "run"]


class CommandFailed(RuntimeError):
    """A measured command exited non-zero: the figure would be meaningless."""


@dataclass(frozen=True, slots=True)
class Run:
    """One measured process: seconds of wall time, peak RSS in bytes, its output."""

    argv: tuple[str, ...]
    seconds: float
    max_rss: int
    stdout: str
    stderr: str


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> Run:
    """Run ``argv`` to completion; its environment is ours plus ``env``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Run(
            tuple(argv),
            seconds,
            usage.ru_maxrss * 1024,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"{' '.join(argv)} exited {proc.returncode}: {(result.stderr or result.stdout)[-800:]}"
        )
    return result
