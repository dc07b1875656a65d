"""What the index keeps of its object cache: the eviction policy, as pure functions.

The index's ``objects`` database caches the plaintext of trees, manifests and commits.
Every scan and every fetched head adds a new version of each directory listing on the
path to a change, so without eviction it grows with every edit (issue 11: 1.2 GB in 17
minutes for a 2,000-file folder at three edits a second).

The policy:

* **Live** objects are never evicted: the closure (trees, file manifests) of every root
  the next rounds read without the network — the base snapshot (commit and tree), the
  disk as last seen (``local_root``, the scanner's root and every cached directory
  listing), the stat cache's manifests — and of every root pinned by a running restore
  (:mod:`chunksync.storage.pins`).
* The rest is a **cache of recent snapshots, kept whole, newest first**, up to a byte
  budget: eviction by generation, not per-object LRU, because

  - the reader relies on "a tree held locally has its whole subtree held" (the fetch of
    a head's closure stops at a held tree), so eviction must remove whole closures,
    never single objects; keeping a union of closures holds that invariant by
    construction;
  - an LRU would turn every read (a lock-free LMDB read, in any process) into a write
    to record the access;
  - what old snapshots serve (``log PATH``, restoring a recent snapshot, a peer's head
    that is one edit ahead of ours) asks for whole snapshots, the newest most often.

* A pass runs when the database has grown by half the budget since the last one, so
  the cache stays between the live set and live + 1.5 × budget — a flat sawtooth — and
  LMDB reuses the freed pages, so the file stops growing.
* LMDB never shrinks its file. A file much larger than the data in it (an index
  bloated before this policy existed) is rewritten by a compacting copy when the daemon
  starts (:func:`should_compact`, :mod:`chunksync.storage.upkeep`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..objects import ObjectId

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MAX_EVENTS",
    "RECENT_ROOTS",
    "Retention",
    "plan_retention",
    "remember",
    "should_collect",
    "should_compact",
]

DEFAULT_BUDGET = 32 << 20  # bytes of plaintext cached beyond the live set
RECENT_ROOTS = 32  # snapshots remembered as cache candidates (newest first)
DEFAULT_MAX_EVENTS = 20_000  # the local change journal keeps this many latest entries
COMPACT_SLACK = 64 << 20  # a file this much larger than its data (and 2x) is compacted


@dataclass(frozen=True, slots=True)
class Retention:
    """The outcome of one pass: what stays, what goes, and why."""

    keep: frozenset[ObjectId]
    evict: frozenset[ObjectId]
    live_bytes: int
    cached_bytes: int
    #: the recent roots whose closures stay cached, newest first
    cached_roots: tuple[ObjectId, ...]


def plan_retention(
    sizes: Mapping[ObjectId, int],
    live: Collection[ObjectId],
    recent: Sequence[tuple[ObjectId, Collection[ObjectId]]],
    budget: int,
) -> Retention:
    """Choose what to keep of the cached objects ``sizes`` (id -> bytes).

    ``live`` is the union of the live closures (kept whatever their size);
    ``recent`` lists (root, closure of root), newest first. Closures are taken whole
    while the bytes they add beyond what is already kept fit in ``budget``; the first
    that does not fit ends the cache (older generations go before newer ones).
    """
    if budget < 0:
        raise ValueError("budget must be >= 0")
    keep = {oid for oid in live if oid in sizes}
    live_bytes = sum(sizes[oid] for oid in keep)
    cached = 0
    roots: list[ObjectId] = []
    for root, closure in recent:
        extra = {oid for oid in closure if oid in sizes and oid not in keep}
        cost = sum(sizes[oid] for oid in extra)
        if cached + cost > budget:
            break
        keep |= extra
        cached += cost
        roots.append(root)
    evict = frozenset(oid for oid in sizes if oid not in keep)
    return Retention(frozenset(keep), evict, live_bytes, cached, tuple(roots))


def remember(
    ring: Sequence[ObjectId], roots: Iterable[ObjectId], cap: int = RECENT_ROOTS
) -> tuple[ObjectId, ...]:
    """The ring of recent roots with ``roots`` added in front (newest first, no repeats)."""
    front = list(dict.fromkeys(roots))
    return tuple(dict.fromkeys([*front, *ring]))[:cap]


def should_collect(db_bytes: int, after_last: int | None, budget: int) -> bool:
    """Run a pass now? ``db_bytes``: the objects database's size now; ``after_last``:
    its size after the previous pass (None: no pass yet in this process)."""
    if after_last is None:
        return db_bytes > budget
    return db_bytes > after_last + budget // 2


def should_compact(file_bytes: int, used_bytes: int) -> bool:
    """Rewrite the index file? Only when it is both twice its data and 64 MiB over it:
    compacting costs a full copy, and LMDB reuses free pages anyway."""
    return file_bytes > 2 * used_bytes and file_bytes - used_bytes > COMPACT_SLACK
