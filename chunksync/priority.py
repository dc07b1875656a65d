"""Background work yields to the person at the keyboard: the daemon's CPU and I/O priority.

The daemon lowers its own scheduling priority when it starts (on by default, off with
``chunksync daemon --normal-priority``); foreground commands (``sync``, ``join``,
``restore``) keep the priority they were started with, since someone is waiting for
them. What it sets:

* CPU: nice :data:`DAEMON_NICE` (never *raising* a priority already lower), so scans,
  hashing and sealing run in the time an interactive program leaves;
* I/O: the lowest best-effort level (Linux CFQ/BFQ class 2, level 7) through psutil.
  Not the "idle" class: under a steady foreground load idle I/O can starve for
  minutes, which would hold every sync.

On Linux both are per thread and inherited by threads created afterwards, so
:func:`lower_priority` must run before the daemon starts any thread (the watcher, the
executor): ``run_daemon`` calls it first thing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import psutil

__all__ = ["DAEMON_IO_LEVEL", "DAEMON_NICE", "Priority", "current_priority", "lower_priority"]

log = logging.getLogger(__name__)

DAEMON_NICE = 10
DAEMON_IO_LEVEL = 7  # best-effort levels run 0 (highest) .. 7 (lowest)


@dataclass(frozen=True, slots=True)
class Priority:
    """What a process runs at: its nice value and I/O class (as psutil names it)."""

    nice: int
    io_class: str
    io_level: int | None

    @property
    def low(self) -> bool:
        return self.nice >= DAEMON_NICE or self.io_class == "idle"

    def to_json(self) -> dict[str, object]:
        return {
            "nice": self.nice,
            "io_class": self.io_class,
            "io_level": self.io_level,
            "low": self.low,
        }


def current_priority(pid: int | None = None) -> Priority:
    """The priority of ``pid`` (default: this process)."""
    proc = psutil.Process(pid)
    nice = proc.nice()
    io_class, io_level = "unsupported", None
    if hasattr(proc, "ionice"):
        io = proc.ionice()
        names = {
            psutil.IOPRIO_CLASS_NONE: "none",
            psutil.IOPRIO_CLASS_RT: "realtime",
            psutil.IOPRIO_CLASS_BE: "best-effort",
            psutil.IOPRIO_CLASS_IDLE: "idle",
        }
        io_class, io_level = names.get(io.ioclass, str(io.ioclass)), io.value
    return Priority(nice, io_class, io_level)


def lower_priority(nice: int = DAEMON_NICE, io_level: int = DAEMON_IO_LEVEL) -> Priority:
    """Lower this process's CPU and I/O priority (never raise it); returns the result.
    A platform that refuses either leaves it as it was, with one warning."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) < nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        log.warning("could not lower the CPU priority: %s", exc)
    proc = psutil.Process()
    if hasattr(proc, "ionice"):
        try:
            io = proc.ionice()
            if io.ioclass != psutil.IOPRIO_CLASS_IDLE and not (
                io.ioclass == psutil.IOPRIO_CLASS_BE and io.value >= io_level
            ):
                proc.ionice(psutil.IOPRIO_CLASS_BE, value=io_level)
        except (OSError, psutil.Error) as exc:
            log.warning("could not lower the I/O priority: %s", exc)
    return current_priority()
