"""Retention policies with restic's vocabulary: which snapshots ``forget`` keeps, and why.

Pure functions, shared by the client (``chunksync forget``) and the server (a folder's
stored policy applied by the owner's daemon), so both decide the same way:

* ``last N``: the N newest snapshots;
* ``hourly/daily/weekly/monthly/yearly N``: for the last N hours (days, ISO weeks,
  months, years) *that have snapshots*, the newest snapshot of each — buckets are UTC
  calendar units, so the answer does not depend on the machine's time zone;
* ``within D``: every snapshot made within D (``1y2m3d4h``: years, months of 30 days,
  days, hours) before the newest snapshot, as restic measures it.

A snapshot is kept if any rule keeps it (every reason is reported); the rest are
forgotten. Protected snapshots (the current head, heads a device may still base on)
are always kept, with their own reason. Times are the server's head-move times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import UserError

__all__ = ["BUCKETS", "Decision", "Policy", "Stamped", "decide", "parse_duration"]

_DURATION = re.compile(r"\A(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?\Z")
_HOUR = 3600


def _hour(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day, t.hour)


def _week(t: datetime) -> tuple[int, ...]:
    iso = t.isocalendar()
    return (iso.year, iso.week)


#: bucket name -> the calendar unit a snapshot falls in
BUCKETS: dict[str, Callable[[datetime], tuple[int, ...]]] = {
    "hourly": _hour,
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": _week,
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}
_FIELDS = ("last", *BUCKETS)


def parse_duration(text: str) -> int:
    """Seconds in a restic duration such as ``2d``, ``1y6m`` or ``36h``."""
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None:
        raise UserError(f"cannot read duration {text!r}: use e.g. 7d, 36h, 1y6m (y, m, d, h)")
    years, months, days, hours = (int(g or 0) for g in m.groups())
    return ((years * 365 + months * 30 + days) * 24 + hours) * _HOUR


@dataclass(frozen=True, slots=True)
class Policy:
    """How many snapshots of each kind to keep; 0 (or None for ``within``) is unset."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: str | None = None

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10**6:
                raise UserError(f"--keep-{name} must be a whole number from 0 to 1000000")
        if self.within is not None:
            parse_duration(self.within)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, n) for n in _FIELDS) and self.within is None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {n: getattr(self, n) for n in _FIELDS if getattr(self, n)}
        if self.within is not None:
            doc["within"] = self.within
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Policy:
        if not isinstance(doc, dict) or set(doc) - {*_FIELDS, "within"}:
            raise UserError("malformed retention policy")
        within = doc.get("within")
        if within is not None and not isinstance(within, str):
            raise UserError("malformed retention policy: within must be a duration")
        return cls(**{n: doc.get(n, 0) for n in _FIELDS}, within=within)

    def describe(self) -> str:
        parts = [f"--keep-{n} {getattr(self, n)}" for n in _FIELDS if getattr(self, n)]
        if self.within is not None:
            parts.append(f"--keep-within {self.within}")
        return " ".join(parts) or "(none)"


@dataclass(frozen=True, slots=True)
class Stamped:
    """A snapshot as the policy sees it: its id and its time (epoch seconds)."""

    id: str
    time: float


@dataclass(frozen=True, slots=True)
class Decision:
    """``keep``: id -> the reasons it is kept; ``forget``: the rest, oldest first."""

    keep: dict[str, list[str]] = field(default_factory=dict)
    forget: list[str] = field(default_factory=list)


def decide(
    policy: Policy, snapshots: Sequence[Stamped], protected: Mapping[str, str] | None = None
) -> Decision:
    """Apply ``policy`` to ``snapshots`` (any order); ``protected`` id -> reason."""
    if policy.empty:
        raise UserError(
            "no policy given: use --keep-last, --keep-hourly/daily/weekly/monthly/yearly "
            "or --keep-within (forgetting everything is never the default)"
        )
    newest_first = sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True)
    keep: dict[str, list[str]] = {}

    def add(sid: str, reason: str) -> None:
        keep.setdefault(sid, []).append(reason)

    for snap in newest_first[: policy.last]:
        add(snap.id, "last")
    for name, unit in BUCKETS.items():
        wanted = getattr(policy, name)
        seen: set[tuple[int, ...]] = set()
        for snap in newest_first:
            if len(seen) >= wanted:
                break
            bucket = unit(datetime.fromtimestamp(snap.time, UTC))
            if bucket not in seen:
                seen.add(bucket)
                add(snap.id, f"{name} snapshot")
    if policy.within is not None and newest_first:
        limit = newest_first[0].time - parse_duration(policy.within)
        for snap in newest_first:
            if snap.time >= limit:
                add(snap.id, f"within {policy.within}")
    known = {s.id for s in snapshots}
    for sid, reason in (protected or {}).items():
        if sid in known:
            add(sid, reason)
    forget = [s.id for s in sorted(snapshots, key=lambda s: (s.time, s.id)) if s.id not in keep]
    return Decision(keep, forget)
