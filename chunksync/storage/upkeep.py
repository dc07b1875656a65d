"""Keeping the index bounded: eviction passes, journal trimming and compaction.

:class:`IndexKeeper` runs between sync rounds (the daemon after each round, a one-shot
``sync`` at its end), never during one, in the process that holds the folder lock — so
no round of this folder runs while it deletes. It applies
:func:`~chunksync.storage.cache_policy.plan_retention`: what the next rounds read is
kept (see that module for the policy and why), plus whole recent snapshots up to a
byte budget; the rest of the ``objects`` cache goes, ``known`` keeps only the ids of
what is kept (and of the live files' chunks), and the change journal keeps its latest
:data:`~chunksync.storage.cache_policy.DEFAULT_MAX_EVENTS` entries. Everything it
removes is a cache: an evicted object is fetched again if ever needed, a forgotten
``known`` id costs one "missing?" query.

:func:`compact_if_bloated` rewrites an index file that is mostly free pages, by
LMDB's compacting copy and an atomic rename, only when no other process has it open.

This module reaches into :class:`~chunksync.storage.index.Index` internals (its
batched scans and its writer's replayable ops) rather than growing index.py, which is
at its size limit; the operations stay inside the index's own transaction machinery.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from ..errors import IntegrityError
from ..objects import (
    ID_SIZE,
    Commit,
    FileManifest,
    ObjectId,
    Tree,
    TreeParts,
    decode_object,
    id_from_hex,
)
from ..treeparts import children
from . import cache_policy
from .index import Index
from .pins import read_pins

__all__ = ["GcReport", "IndexKeeper", "compact_if_bloated", "db_bytes"]

log = logging.getLogger(__name__)

RING_META = "cache.recent"  # the ring of recent roots (raw ids, newest first)
AFTER_META = "cache.after"  # the objects database's size after the last pass (decimal)
_LIVE_TREE_META = ("base_root", "local_root", "scan.root")
_LIVE_COMMIT_META = ("base",)


@dataclass(frozen=True, slots=True)
class GcReport:
    """One eviction pass, for the log."""

    objects_before: int
    objects_after: int
    bytes_before: int
    bytes_after: int
    live_bytes: int
    cached_bytes: int
    known_dropped: int
    events_dropped: int

    def to_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def db_bytes(index: Index, name: str) -> tuple[int, int]:
    """(entries, bytes of pages) of one sub-database: cheap, no iteration."""
    with index._read() as txn:
        st = txn.stat(index._dbs[name])
    return st["entries"], st["psize"] * (
        st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
    )


class _Graph:
    """Reads children of cached objects once per pass (decoded lazily)."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.kids: dict[ObjectId, tuple[ObjectId, ...]] = {}
        self.chunks: dict[ObjectId, tuple[ObjectId, ...]] = {}

    def children(self, oid: ObjectId) -> tuple[ObjectId, ...]:
        found = self.kids.get(oid)
        if found is not None:
            return found
        raw = self.index.get_object(oid)
        out: tuple[ObjectId, ...] = ()
        if raw is not None:
            try:
                obj = decode_object(raw[0], raw[1])
            except IntegrityError:
                obj = None
            if isinstance(obj, Tree | TreeParts):
                out = tuple(oid for _, oid in children(obj))  # parts, subtrees, manifests
            elif isinstance(obj, Commit):
                out = (obj.tree,)
            elif isinstance(obj, FileManifest):
                self.chunks[oid] = tuple(c.id for c in obj.chunks)
        self.kids[oid] = out
        return out

    def closure(
        self, roots: Iterable[ObjectId], present: Callable[[ObjectId], bool]
    ) -> set[ObjectId]:
        """Every present object reachable from ``roots`` (roots included if present)."""
        seen: set[ObjectId] = set()
        stack = [r for r in roots if present(r)]
        while stack:
            oid = stack.pop()
            if oid in seen:
                continue
            seen.add(oid)
            stack.extend(c for c in self.children(oid) if c not in seen and present(c))
        return seen


class IndexKeeper:
    """Bounds one folder's index; call :meth:`after_round` after each sync round."""

    def __init__(
        self,
        index: Index,
        *,
        budget: int = cache_policy.DEFAULT_BUDGET,
        max_events: int = cache_policy.DEFAULT_MAX_EVENTS,
    ) -> None:
        self.index = index
        self.budget = budget
        self.max_events = max_events
        after = index.get_meta(AFTER_META)
        #: the size after the last pass, kept across processes: a one-shot sync of a large
        #: folder does not pay a pass each time just because its live set is over budget
        self._after: int | None = int(after) if after and after.isdigit() else None
        self._events_dropped = 0
        raw = index.get_meta(RING_META) or b""
        self.ring: tuple[ObjectId, ...] = tuple(
            ObjectId(raw[i : i + ID_SIZE]) for i in range(0, len(raw) - ID_SIZE + 1, ID_SIZE)
        )

    def _roots(self) -> tuple[list[ObjectId], list[ObjectId]]:
        """(live tree roots, live commits) named by the index's meta keys."""
        trees = [
            ObjectId(v)
            for k in _LIVE_TREE_META
            if len(v := self.index.get_meta(k) or b"") == ID_SIZE
        ]
        commits = []
        for key in _LIVE_COMMIT_META:
            value = (self.index.get_meta(key) or b"").decode(errors="replace")
            try:
                commits.append(id_from_hex(value))
            except (ValueError, IntegrityError):
                continue
        return trees, commits

    def after_round(self) -> GcReport | None:
        """Remember this round's roots; run a pass if the cache grew enough; trim the
        journal. Never raises for an index problem: upkeep must not stop syncing."""
        try:
            trees, commits = self._roots()
            self.ring = cache_policy.remember(self.ring, [*commits, *trees])
            self._events_dropped += self._trim_events()
            _, size = db_bytes(self.index, "objects")
            if not cache_policy.should_collect(size, self._after, self.budget):
                if self._after is None:
                    self._after = size
                return None
            return self.collect()
        except (lmdb.Error, OSError) as exc:
            log.warning("index upkeep skipped: %s", exc)
            return None

    def collect(self) -> GcReport | None:
        """One eviction pass (see the module docstring); None if a pin appeared meanwhile."""
        index = self.index
        count_before, bytes_before = db_bytes(index, "objects")
        sizes = {ObjectId(k): len(v) for k, v in index._scan("objects", b"", lambda k: False)}
        pins = read_pins(index.path)
        graph = _Graph(index)
        present = sizes.__contains__
        trees, commits = self._roots()
        live_roots: set[ObjectId] = {*trees, *commits, *pins}
        live_roots.update(oid for _, oid in index.iter_dirtrees())
        live = graph.closure(live_roots, present)
        live.update(s.manifest_id for s in index.iter_states() if s.manifest_id in sizes)
        for oid in list(live):
            graph.children(oid)  # decode live manifests too: their chunks stay "known"
        recent = [
            (root, graph.closure([root], present)) for root in self.ring if root not in live_roots
        ]
        plan = cache_policy.plan_retention(sizes, live, recent, self.budget)
        live_chunks = {c for oid in live for c in graph.chunks.get(oid, ())}
        known_keep = plan.keep | live_chunks
        drop_known = [
            k
            for k, _ in index._scan("known", b"", lambda k: False)
            if ObjectId(k) not in known_keep
        ]
        kept_ring = [r for r in self.ring if r in live_roots or r in plan.cached_roots]
        with index.write() as w:
            if read_pins(index.path) != pins:
                return None  # a restore started meanwhile: try again after the next round
            for oid in plan.evict:
                w._do("delete", "objects", bytes(oid))
            for key in drop_known:
                w._do("delete", "known", key)
            w.set_meta(RING_META, b"".join(kept_ring))
        self.ring = tuple(kept_ring)
        self._events_dropped, dropped = 0, self._events_dropped
        _, self._after = db_bytes(index, "objects")
        with index.write() as w:
            w.set_meta(AFTER_META, str(self._after).encode())
        return GcReport(
            objects_before=count_before,
            objects_after=count_before - len(plan.evict),
            bytes_before=bytes_before,
            bytes_after=self._after,
            live_bytes=plan.live_bytes,
            cached_bytes=plan.cached_bytes,
            known_dropped=len(drop_known),
            events_dropped=dropped,
        )

    def _trim_events(self) -> int:
        """Keep the latest ``max_events`` journal entries (trimmed in steps of 10%)."""
        count, _ = db_bytes(self.index, "events")
        if count <= self.max_events + self.max_events // 10:
            return 0
        drop = count - self.max_events
        keys = [k for k, _ in _first(self.index._scan("events", b"", lambda k: False), drop)]
        with self.index.write() as w:
            for key in keys:
                w._do("delete", "events", key)
        return len(keys)


def _first(items: Iterable[Any], n: int) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if len(out) >= n:
            break
        out.append(item)
    return out


def _used_bytes(env: lmdb.Environment, names: Iterable[str]) -> int:
    st = env.stat()
    total = st["psize"] * (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"])
    with env.begin() as txn:
        for name in names:
            s = txn.stat(env.open_db(name.encode(), txn=txn, create=False))
            total += s["psize"] * (s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"])
    return total


def _nobody_else(lock_file: Path) -> int | None:
    """An fd holding LMDB's lock file exclusively, or None if another process has the
    environment open (every opener holds a shared fcntl lock on its first byte)."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return -1
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
    except OSError:
        os.close(fd)
        return None
    return fd


def compact_if_bloated(path: Path, *, force: bool = False) -> bool:
    """Rewrite the index at ``path`` by a compacting copy if its file is mostly free
    pages (:func:`~chunksync.storage.cache_policy.should_compact`) and no other process
    has it open. Call before this process opens it. Returns True if it was rewritten."""
    data, lock_file = path / "data.mdb", path / "lock.mdb"
    if not data.exists():
        return False
    fd = _nobody_else(lock_file)
    if fd is None:
        return False
    if fd >= 0:
        os.close(fd)  # lmdb.open below takes its own lock; closing drops ours
    copy = path.with_name(path.name + ".compact")
    shutil.rmtree(copy, ignore_errors=True)
    try:
        env = lmdb.open(os.fspath(path), max_dbs=16, subdir=True, readonly=True, lock=True)
    except lmdb.Error as exc:
        log.warning("index compaction skipped: %s", exc)
        return False
    try:
        with env.begin() as txn:
            names = [k.decode() for k, _ in txn.cursor()]
        used = _used_bytes(env, names)
        if not force and not cache_policy.should_compact(data.stat().st_size, used):
            return False
        before = data.stat()
        copy.mkdir(mode=0o700)
        env.copy(os.fspath(copy), compact=True)
    except lmdb.Error as exc:
        log.warning("index compaction skipped: %s", exc)
        shutil.rmtree(copy, ignore_errors=True)
        return False
    finally:
        env.close()
    fd = _nobody_else(lock_file)
    try:
        after = data.stat()
        if fd is None or (after.st_mtime_ns, after.st_size) != (before.st_mtime_ns, before.st_size):
            shutil.rmtree(copy, ignore_errors=True)  # someone opened or wrote it meanwhile
            return False
        with open(copy / "data.mdb", "rb") as f:
            os.fsync(f.fileno())
        os.replace(copy / "data.mdb", data)
        dir_fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if fd is not None and fd >= 0:
            os.close(fd)
    shutil.rmtree(copy, ignore_errors=True)
    log.info("index compacted: %d -> %d bytes", before.st_size, (path / "data.mdb").stat().st_size)
    return True
