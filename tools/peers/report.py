"""Rows of the side-by-side table, their acceptance targets, and the Markdown they print as.

A :class:`Row` holds the raw figures of one scenario (chunksync's runs and, paired with
them, the peer's), so the table can always be recomputed; a :class:`Target` is one
acceptance line of issue 12, checked against the median pair ratio or against an absolute
median / p90 of chunksync's own runs. The printed table is Markdown so that it can be
pasted into ``docs/performance.md`` unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .stats import Spread, pair_ratios, percentile, spread

__all__ = ["Row", "Target", "fmt_value", "render", "to_json"]

Stat = Literal["ratio", "median", "p90"]
Unit = Literal["s", "MiB", "MB"]


@dataclass(frozen=True, slots=True)
class Target:
    """``stat`` must stay below ``bound`` (``≤`` unless ``strict``, then ``<``)."""

    stat: Stat
    bound: float
    strict: bool = False

    def met(self, value: float) -> bool:
        return value < self.bound if self.strict else value <= self.bound

    def text(self, unit: Unit) -> str:
        op = "<" if self.strict else "≤"
        if self.stat == "ratio":
            return f"{op} {self.bound:g}×"
        return f"{self.stat} {op} {fmt_value(self.bound, unit)}"


@dataclass(frozen=True, slots=True)
class Row:
    """One scenario: chunksync's runs, the peer's paired runs (if any), the targets."""

    scenario: str
    unit: Unit
    ours: tuple[float, ...]
    peer: str = ""
    theirs: tuple[float, ...] = ()
    targets: tuple[Target, ...] = ()
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ours:
            raise ValueError(f"{self.scenario}: no chunksync runs")
        if self.theirs and len(self.theirs) != len(self.ours):
            raise ValueError(f"{self.scenario}: {len(self.ours)} runs vs {len(self.theirs)}")
        if any(t.stat == "ratio" for t in self.targets) and not self.theirs:
            raise ValueError(f"{self.scenario}: a ratio target needs peer runs")

    def ratios(self) -> Spread | None:
        return spread(pair_ratios(self.ours, self.theirs)) if self.theirs else None

    def stat(self, which: Stat) -> float:
        if which == "ratio":
            ratios = self.ratios()
            assert ratios is not None  # checked in __post_init__
            return ratios.median
        if which == "median":
            return spread(self.ours).median
        return percentile(self.ours, 0.9)

    def verdict(self) -> str:
        """``pass`` when every target is met, ``miss`` otherwise, ``—`` with no target."""
        if not self.targets:
            return "—"
        return "pass" if all(t.met(self.stat(t.stat)) for t in self.targets) else "**miss**"


def fmt_value(value: float, unit: Unit) -> str:
    """Three significant figures or so, in the row's unit (seconds below 1 s as ms)."""
    if unit == "s" and value < 1.0:
        return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.1f} ms"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    if value >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def _fmt_spread(s: Spread, unit: Unit | None) -> str:
    one = (lambda v: fmt_value(v, unit)) if unit else (lambda v: f"{v:.2f}×")
    if s.n == 1 or s.low == s.high:
        return one(s.median)
    return f"{one(s.median)} ({one(s.low)}–{one(s.high)})"


def _cells(row: Row) -> list[str]:
    ours = _fmt_spread(spread(row.ours), row.unit)
    if any(t.stat == "p90" for t in row.targets):
        ours += f", p90 {fmt_value(percentile(row.ours, 0.9), row.unit)}"
    theirs = f"{row.peer} {_fmt_spread(spread(row.theirs), row.unit)}" if row.theirs else "—"
    ratios = row.ratios()
    ratio = _fmt_spread(ratios, None) if ratios else "—"
    target = ", ".join(t.text(row.unit) for t in row.targets) or "—"
    scenario = row.scenario + (f" ({row.note})" if row.note else "")
    return [scenario, ours, theirs, ratio, target, row.verdict()]


HEADER = (
    "scenario",
    "chunksync median (min–max)",
    "peer median (min–max)",
    "ratio per pair, median (min–max)",
    "target",
    "result",
)


def render(rows: Sequence[Row]) -> str:
    """The Markdown table of ``rows``."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def to_json(rows: Sequence[Row]) -> str:
    """Raw figures of every row, for re-analysis (``--json FILE``)."""
    docs = [
        {
            "scenario": r.scenario,
            "unit": r.unit,
            "chunksync": list(r.ours),
            "peer": r.peer,
            "peer_runs": list(r.theirs),
            "note": r.note,
            "verdict": r.verdict(),
            "targets": [{"stat": t.stat, "bound": t.bound, "strict": t.strict} for t in r.targets],
            **({"extra": r.extra} if r.extra else {}),
        }
        for r in rows
    ]
    return json.dumps(docs, indent=2, ensure_ascii=False)
