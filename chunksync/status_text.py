"""``chunksync status`` for a person: a short table, most important first, with units.

The JSON document (``status --json``, from the daemon or the index) is the contract;
this only renders it. Absent or empty values are left out instead of printed as
``None``; sizes are in B/kB/MB, times local with how long ago, clock skew in seconds.
Keys this module does not know are still shown at the end, so nothing new is hidden.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .failed_text import LINES
from .failed_text import _line as failed_line

__all__ = ["ago", "human_bytes", "status_table"]

_SHOWN = {
    "folder",
    "server",
    "device",
    "state",
    "last_error",
    "base",
    "head",
    "server_head",
    "at_head",
    "sequence",
    "local_changes_pending",
    "pending_changes",
    "conflicts",
    "last_event",
    "last_sync",
    "bytes_up",
    "bytes_down",
    "clock_skew",
    "limit_upload_kib",
    "limit_download_kib",
    "priority",
    "failed_items",
    "failed",
    "waiting_for_writes",
    "daemon_pid",
    "round_active",
    "transfers_in_flight",
}


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _limit(kib: Any) -> str:
    return f"{kib} KiB/s" if kib else "unlimited"


def _when(iso: str) -> str:
    try:
        t = datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return str(iso)
    local = datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return f"{local} ({ago(time.time() - t)})"


def _sync_state(doc: dict[str, Any]) -> str:
    pending = doc.get("pending_changes")
    if isinstance(pending, int) and pending:
        return f"no: {pending} local change{'s' if pending != 1 else ''} to send"
    if doc.get("local_changes_pending"):
        return "no: local changes to send (run 'chunksync sync')"
    if doc.get("at_head") is False:
        return "no: the server has newer changes"
    if doc.get("at_head") or doc.get("base"):
        return "yes"
    return "never synced"


def _rows(doc: dict[str, Any]) -> Iterable[tuple[str, str]]:
    where = ", ".join(f"{k} {doc[k]}" for k in ("server", "device") if doc.get(k))
    yield "folder", f"{doc.get('folder')}" + (f" ({where})" if where else "")
    state = str(doc.get("state"))
    if doc.get("daemon_pid"):
        state += (
            f" (daemon pid {doc['daemon_pid']}{', syncing now' if doc.get('round_active') else ''})"
        )
    yield "state", state
    if doc.get("last_error"):
        yield "last error", str(doc["last_error"])
    yield "in sync", _sync_state(doc)
    head = doc.get("head") or doc.get("base")
    if head:
        extra = f", server {str(doc['server_head'])[:12]}" if doc.get("server_head") else ""
        seq = f" (#{doc['sequence']})" if doc.get("sequence") else ""
        yield "snapshot", f"{str(head)[:12]}{seq}{extra}"
    if doc.get("last_sync"):
        yield "last sync", _when(doc["last_sync"])
    if doc.get("last_event"):
        yield "last change", str(doc["last_event"])
    yield (
        "conflicts",
        str(doc.get("conflicts", 0))
        + (": see 'chunksync conflicts'" if doc.get("conflicts") else ""),
    )
    if doc.get("bytes_up") or doc.get("bytes_down"):
        up, down = human_bytes(doc.get("bytes_up") or 0), human_bytes(doc.get("bytes_down") or 0)
        yield "transferred", f"{up} up, {down} down (since the daemon started)"
    if isinstance(doc.get("clock_skew"), int | float):
        yield "clock skew", f"{doc['clock_skew']:+.2f} s (this device against the server)"
    if "limit_upload_kib" in doc or "limit_download_kib" in doc:
        up, down = _limit(doc.get("limit_upload_kib")), _limit(doc.get("limit_download_kib"))
        yield "bandwidth", f"upload {up}, download {down}"
    if doc.get("priority"):
        yield "priority", str(doc["priority"])
    for key, value in doc.items():
        if key not in _SHOWN and value not in (None, "", [], {}):
            yield key.replace("_", " "), str(value)
    failed = doc.get("failed_items")
    if failed:
        yield "not synced", f"{failed} path{'s' if failed != 1 else ''} (listed below)"


def status_table(doc: dict[str, Any]) -> list[str]:
    rows = list(_rows(doc))
    width = max(len(k) for k, _ in rows)
    out = [f"{k:<{width}}  {v}" for k, v in rows]
    waiting = doc.get("waiting_for_writes") or []
    if waiting:
        out.append(f"waiting for writes to finish: {', '.join(waiting[:LINES])}")
    items = doc.get("failed") or []
    for row in items[:LINES]:
        out.append(
            failed_line(str(row.get("path")), str(row.get("reason")), str(row.get("hint") or ""))
        )
    if len(items) > LINES:
        out.append(f"  ... and {len(items) - LINES} more (see --json)")
    return out
