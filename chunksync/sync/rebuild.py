"""Rebuilding a damaged index in the middle of a sync (see storage/index.py).

The engine calls :func:`rebuild_index` when a round finds the index damaged
(:class:`~chunksync.errors.IndexDamaged`) and then runs the round again, once: on an
empty index the round rescans everything and merges without a base, so nothing is
deleted on either side and a file that differs from the server's is kept as a
conflicted copy; local edits made since the last sync survive either way.

Before the index goes, the rollback guard's memory is carried over to
``.chunksync/trust`` if the index still holds a newer accepted head than the file
(a folder synced before the file existed), so a server cannot roll the device back
through the rebuild.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..errors import IndexDamaged
from ..objects import INT64_MAX
from ..storage.index import Index
from ..storage.meta import BASE, HIGH_SEQ
from ..storage.trust import Trust, load_trust, save_trust

__all__ = ["rebuild_index"]


def _salvage_trust(index: Index, state_dir: Path) -> None:
    with contextlib.suppress(IndexDamaged, OSError):
        base, high = index.get_meta(BASE), index.get_meta(HIGH_SEQ)
        if base is None or high is None or int(high) > INT64_MAX:
            return
        trust = load_trust(state_dir)
        if trust is None or trust.seq < int(high):
            save_trust(state_dir, Trust(base.decode(), int(high)))


def rebuild_index(index: Index, state_dir: Path) -> bool:
    """Keep the rollback memory, then move the index aside and start an empty one in
    its place (one warning line). Returns True, for the caller's once-only flag."""
    _salvage_trust(index, state_dir)
    index.rebuild()
    return True
