"""How failed items are shown by the command line (``sync``, ``status``, ``init``, ``join``).

Each item is one line, ``PATH: reason (what to do)``; a long list is cut after
:data:`LINES` lines with a count of the rest, since ``chunksync status --json`` lists
them all. Paths are raw here: the caller prints each line with
:func:`chunksync.output.say`, which escapes it, so a hostile name cannot forge a terminal line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .failed import FailedItem, Recorded

__all__ = ["LINES", "failed_json", "failed_lines", "status_lines"]

LINES = 20


def _line(path: str, reason: str, hint: str) -> str:
    return f"  {path}: {reason}" + (f" ({hint})" if hint else "")


def failed_lines(items: Sequence[FailedItem], where: str) -> list[str]:
    """The summary a sync prints: how many paths were not synced, and each one."""
    skipped = [i for i in items if i.skipped]
    notes = [i for i in items if not i.skipped]
    out: list[str] = []
    if skipped:
        out.append(
            f"{len(skipped)} item{'s' if len(skipped) != 1 else ''} not synced "
            f"(see 'chunksync status {where}'):"
        )
        out += [_line(i.path, i.reason, i.hint) for i in skipped[:LINES]]
        if len(skipped) > LINES:
            out.append(f"  ... and {len(skipped) - LINES} more")
    if notes:
        out.append(f"{len(notes)} name{'s' if len(notes) != 1 else ''} other systems cannot hold:")
        out += [_line(i.path, i.reason, i.hint) for i in notes[:LINES]]
    return out


def failed_json(record: Recorded) -> dict[str, Any]:
    return {"failed_items": record.skipped, "failed": [i.to_json() for i in record.items]}


def status_lines(doc: dict[str, Any]) -> Iterable[str]:
    """``chunksync status`` as text: one ``key: value`` line each, then the items."""
    lists = ("failed", "waiting_for_writes")
    for key, value in doc.items():
        if key not in lists:
            yield f"{key.replace('_', ' ')}: {value}"
    waiting = doc.get("waiting_for_writes") or []
    if waiting:
        yield f"waiting for writes to finish: {', '.join(waiting[:LINES])}"
    rows = doc.get("failed") or []
    for row in rows[:LINES]:
        yield _line(str(row.get("path")), str(row.get("reason")), str(row.get("hint") or ""))
    if len(rows) > LINES:
        yield f"  ... and {len(rows) - LINES} more (see --json)"
