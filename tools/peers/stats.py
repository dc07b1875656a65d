"""The arithmetic of side-by-side figures: paired ratios, median and spread, percentiles.

A ratio is taken per pair of alternating runs (chunksync run *i* over the peer's run *i*,
measured back to back on the same data), never as median over median: on a shared machine
the load drifts, and a pair sees the same load, so the ratio survives noise that the
absolute figures do not. The spread is the min–max over the repetitions, shown beside the
median so a reader sees how far one run can be trusted.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Spread", "pair_ratios", "percentile", "spread"]


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and range of a set of measurements (or ratios)."""

    median: float
    low: float
    high: float
    n: int

    def __post_init__(self) -> None:
        if self.n < 1 or not self.low <= self.median <= self.high:
            raise ValueError(f"inconsistent spread {self}")


def spread(values: Sequence[float]) -> Spread:
    """Median and min–max of ``values`` (at least one)."""
    if not values:
        raise ValueError("no measurements")
    if any(math.isnan(v) for v in values):
        raise ValueError("a measurement is NaN")
    return Spread(statistics.median(values), min(values), max(values), len(values))


def pair_ratios(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """``ours[i] / theirs[i]`` for each pair of alternating runs.

    A zero denominator (a peer that sent no bytes at all) gives ``inf`` when ours is
    positive and 1.0 when both are zero: equal work, equal cost.
    """
    if len(ours) != len(theirs):
        raise ValueError(f"unpaired runs: {len(ours)} vs {len(theirs)}")
    out = []
    for a, b in zip(ours, theirs, strict=True):
        if b == 0:
            out.append(1.0 if a == 0 else math.inf)
        else:
            out.append(a / b)
    return out


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0..1) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no measurements")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"percentile {p} outside 0..1")
    ordered = sorted(values)
    pos = p * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
