"""Small pure helpers of the daemon: its JSON log line, reconnect backoff, clock skew."""

from __future__ import annotations

import json
import sys
import time
from email.utils import parsedate_to_datetime
from typing import Any, TextIO

__all__ = ["clock_skew", "log_event", "reconnect_delay"]


def log_event(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """One structured JSON line on stderr."""
    doc = {"time": round(time.time(), 3), "event": event, **fields}
    out = stream or sys.stderr
    out.write(json.dumps(doc, sort_keys=True, default=str) + "\n")
    out.flush()


def reconnect_delay(attempt: int, base: float, cap: float, unit: float) -> float:
    """Capped exponential backoff with jitter: uniform in [w/2, w], w = min(cap, base*2^n)."""
    window = min(cap, base * (2 ** min(attempt, 30)))
    return window * (0.5 + 0.5 * max(0.0, min(1.0, unit)))


def clock_skew(local_before: float, local_after: float, date_header: str) -> float:
    """Local clock minus server clock (seconds) from an HTTP ``Date`` header."""
    server = parsedate_to_datetime(date_header).timestamp()
    return (local_before + local_after) / 2 - server
