"""Prune on the server: the sweep half of a mark-and-sweep the server cannot run alone.

The server cannot read trees, so only a key holder knows which objects a snapshot
needs. A prune is therefore split (restic ``prune``, kopia maintenance):

1. **start** (``POST prune``): the server remembers the ids it holds *now* — the
   candidates. Anything stored later (a sync in flight, a heal) is not a candidate and
   can never be swept by this prune.
2. **mark** (``POST prune/{id}/live``, repeated): the owner's client walks every kept
   snapshot (and every commit, which are always kept) and sends the ids they reach.
3. **sweep** (``POST prune/{id}/sweep`` naming the head the mark covered): deletes the
   candidates that were not marked live, then compacts the packs (storage/compact.py).

Why a sync running meanwhile loses nothing: a device decides what to upload from
"which of these are missing" answers and from its cache of known ids, and a sweep may
delete an unreachable object the device just decided not to upload because it was
there. So the head can never move onto a commit whose objects might have been swept:

* the sweep refuses (409) if the head moved since the mark covered it (the client
  marks the new snapshots and asks again);
* while a folder is being swept, ``PUT head`` waits for the sweep to end (and is
  refused with 409 if a sweep still runs inside its transaction);
* the sweep changes the storage epoch (``handlers.common.change_epoch``) before it lets head
  moves in again, and a ``PUT head`` naming the epoch its round began under is
  refused (409) once that changed; the retried round sees the new epoch, distrusts its
  cache of known ids and re-uploads what is missing (chunksync/sync/heal.py).

A crash anywhere leaves a consistent store: deletion is one index transaction, the
compaction is crash-safe on its own, sessions and the "sweeping" mark live in memory
and die with the process, and a restart changes the epoch anyway.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PruneSession", "Pruning", "SweepResult", "sweep_store"]

SESSION_TTL = 3600.0  # seconds an unfinished prune is remembered
SWEEP_WAIT = 60.0  # seconds a head move waits for a running sweep before it is refused
PURGE_THRESHOLD = 1e-9  # a purge compacts every pack with any dead byte


@dataclass
class PruneSession:
    """One prune between its start and its sweep (server memory only)."""

    id: str
    folder_id: str
    user: str
    started: float
    head: str | None  # the head when it started
    candidates: frozenset[bytes]
    live: set[bytes] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class SweepResult:
    deleted: int
    bytes_deleted: int
    packs_rewritten: int
    bytes_freed: int

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class Pruning:
    """The app's prune sessions and the folders being swept (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, PruneSession] = {}
        self._sweeping: set[str] = set()
        #: (folder id, device id) -> the head last recorded as shown to that device
        self.shown: dict[tuple[str, str], str] = {}

    def start(
        self, folder_id: str, user: str, head: str | None, candidates: frozenset[bytes]
    ) -> PruneSession:
        """A new session; an older unfinished one of the same folder is dropped."""
        now = time.monotonic()
        session = PruneSession(secrets.token_hex(16), folder_id, user, now, head, candidates)
        with self._lock:
            self._sessions = {
                k: s
                for k, s in self._sessions.items()
                if s.folder_id != folder_id and now - s.started < SESSION_TTL
            }
            self._sessions[session.id] = session
        return session

    def get(self, prune_id: str, folder_id: str) -> PruneSession | None:
        with self._lock:
            session = self._sessions.get(prune_id)
        return session if session is not None and session.folder_id == folder_id else None

    def finish(self, prune_id: str) -> None:
        with self._lock:
            self._sessions.pop(prune_id, None)

    def begin_sweep(self, folder_id: str) -> bool:
        """Mark the folder as being swept (call inside the head transaction)."""
        with self._lock:
            if folder_id in self._sweeping:
                return False
            self._sweeping.add(folder_id)
            return True

    def end_sweep(self, folder_id: str) -> None:
        with self._lock:
            self._sweeping.discard(folder_id)

    async def wait_swept(self, folder_id: str, timeout: float = SWEEP_WAIT) -> None:
        """Return once no sweep runs on the folder (or after ``timeout`` seconds: the
        head move is then refused, and the device retries later)."""
        deadline = time.monotonic() + timeout
        while self.sweeping(folder_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def sweeping(self, folder_id: str) -> bool:
        with self._lock:
            return folder_id in self._sweeping


def _sweep_sync(
    store: Any,
    ns: str,
    session: PruneSession,
    pruning: Pruning,
    change_epoch: Callable[[], None],
    purge: bool,
) -> SweepResult:
    """The whole sweep, on one thread: whatever happens, the storage epoch changes
    before head moves are let in again — here, not in the awaiting handler, which a
    client that hangs up may cancel while this thread still deletes."""
    try:
        return _delete_and_compact(store, ns, session, purge)
    finally:
        change_epoch()
        pruning.end_sweep(session.folder_id)


def _delete_and_compact(store: Any, ns: str, session: PruneSession, purge: bool) -> SweepResult:
    present = set(store.list(ns))
    dead = sorted((session.candidates & present) - session.live)
    before = store.stats(ns).bytes
    deleted = store.delete_many(ns, dead) if dead else 0
    bytes_deleted = before - store.stats(ns).bytes
    rewritten = freed = 0
    compact = getattr(store, "compact", None)
    if compact is not None:
        # a purge rewrites every pack holding a dead byte: the purged ciphertext must go
        done = compact(ns, PURGE_THRESHOLD) if purge else compact(ns)
        rewritten, freed = done.packs_rewritten, done.bytes_freed
    scrub = getattr(store, "scrub", None)
    if purge and scrub is not None:
        scrub()
    return SweepResult(deleted, bytes_deleted, rewritten, freed)


async def sweep_store(
    store: Any,
    ns: str,
    session: PruneSession,
    pruning: Pruning,
    change_epoch: Callable[[], None],
    *,
    purge: bool,
) -> SweepResult:
    """Delete the unmarked candidates and compact; the caller began the sweep.
    ``change_epoch`` records that objects went (``handlers.common.change_epoch``)."""
    work = asyncio.ensure_future(
        asyncio.to_thread(_sweep_sync, store, ns, session, pruning, change_epoch, purge)
    )
    return await asyncio.shield(work)
