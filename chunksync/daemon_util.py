"""Small helpers of the daemon: its structured log line, reconnect backoff, clock skew."""

from __future__ import annotations

import sys
import time
from email.utils import parsedate_to_datetime
from typing import Any, TextIO

from . import logsetup

__all__ = ["clock_skew", "log_event", "reconnect_delay"]


#: the level of the daemon's events that are not plain information
EVENT_LEVELS = {"error": "error", "revoked": "error", "offline": "warning", "held": "warning"}
LOGGER = "chunksync.daemon"


def log_event(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """One structured line, through the shared setup (:mod:`chunksync.logsetup`) when
    it is configured, else rendered the same way as JSON onto ``stream`` / stderr."""
    level = EVENT_LEVELS.get(event, "info")
    if stream is None and logsetup.configured():
        logsetup.emit(LOGGER, event, level=level, **fields)
        return
    doc = {"time": round(time.time(), 3), "event": event, "level": level, "logger": LOGGER}
    out = stream or sys.stderr
    out.write(logsetup.render({**doc, **fields}) + "\n")
    out.flush()


def reconnect_delay(attempt: int, base: float, cap: float, unit: float) -> float:
    """Capped exponential backoff with jitter: uniform in [w/2, w], w = min(cap, base*2^n)."""
    window = min(cap, base * (2 ** min(attempt, 30)))
    return float(window * (0.5 + 0.5 * max(0.0, min(1.0, unit))))


def clock_skew(local_before: float, local_after: float, date_header: str) -> float:
    """Local clock minus server clock (seconds) from an HTTP ``Date`` header."""
    server = parsedate_to_datetime(date_header).timestamp()
    return (local_before + local_after) / 2 - server
