"""PackObjectStore: the embedded disk backend — append-only packs plus a SQLite index.

Layout under ``root`` (``DATA/objects``)::

    index.sqlite[-wal,-shm]     objects(ns, oid, pack, offset, length, digest), WAL
    writer.lock                 flock held by the one process allowed to write
    <ns>/packs/<n>.pack         blobs appended back to back, rolled at ``pack_size``

Why it is safe (borg/restic style): ``put_many`` appends the new blobs of a batch to the
namespace's current pack, ``fdatasync``s the pack, and only then inserts their index
rows in one transaction (``synchronous=FULL``). Only indexed objects are visible, so an
interrupted append is invisible; at open the writer lines every pack up with the index
(:func:`.heal.reconcile`: an unindexed tail is cut off, objects a shortened pack lost
are quarantined) and deletes stray ``*.tmp`` files. A whole batch becomes visible at
once. A damaged object is never served: every read re-checks the blob's digest and
quarantines it on a mismatch (:mod:`.heal`), so it reads as missing until re-uploaded.

Why it is fast: a batch costs one pack sync and one index commit, not one fsync per
object, and concurrent batches share them (group commit: whichever thread commits next
syncs the packs and writes the rows of every batch queued meanwhile). Appends are
serialized per namespace; reads use ``os.pread`` on cached descriptors and per-thread
SQLite connections; ``has_many`` answers from an in-memory set of the namespace's ids,
loaded on first use (about 100 bytes per object).

Concurrency between processes: one writer process (the server) holds ``writer.lock``,
and only the lock holder sweeps or writes. Any other opener gets a read-only view
(``stats``, ``check``, ``get``) through SQLite WAL, never blocking the writer; its
writes raise :class:`StorageError` until the lock is free, then it takes over (sweeping
first). ``read_only=True`` never takes the lock: use it for admin commands.

Deletion removes index rows only: the blob bytes stay in their pack as dead space until
:meth:`PackObjectStore.compact` rewrites the packs that are mostly dead (:mod:`.compact`).

Parts: :mod:`.packfiles` (pack paths, descriptors, reads), :mod:`.packindex` (index
schema and per-thread readers), :mod:`.packio` (appends, group commit), :mod:`.heal`
(damage: inspection, quarantine, reconcile).
"""

from __future__ import annotations

import builtins
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chunksync.errors import ObjectNotFound
from chunksync.wire import blob_digest

from . import compact, heal
from .base import StorageError, StoreStats, check_namespace, check_oid, converting
from .heal import Damage
from .packfiles import PackFiles
from .packindex import INDEX_FILE, IndexReaders, connect, migrate
from .packio import GroupCommit, Job, append_rows, ensure_dir, raise_failed, transact

__all__ = ["INDEX_FILE", "LOCK_FILE", "PACK_SIZE", "PackObjectStore"]

PACK_SIZE = 256 * 1024 * 1024
LOCK_FILE = "writer.lock"
_DELETE = "DELETE FROM objects WHERE ns = ? AND oid = ?"
_ROW = "oid, pack, offset, length, digest"


@dataclass(slots=True)
class _Space:
    """Writer-side state of one namespace; every field is guarded by ``lock``."""

    pack: int  # number of the pack being appended to
    end: int  # append offset in that pack
    lock: threading.Lock = field(default_factory=threading.Lock)
    present: set[bytes] | None = None  # committed ids, loaded on first use
    inflight: dict[bytes, Job] = field(default_factory=dict)


class PackObjectStore:
    """The embedded disk :class:`chunksync_server.storage.base.ObjectStore` (see module doc).

    Args:
        root: the ``objects`` directory; created if missing.
        pack_size: a pack is rolled once an append would take it past this size.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        pack_size: int = PACK_SIZE,
        read_only: bool = False,
        on_damage: Callable[[Damage], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self._pack_size = pack_size
        self._closed = False
        self._lock = threading.Lock()  # guards _spaces, _writer
        self._spaces: dict[str, _Space] = {}
        self._files = PackFiles(self.root)
        self._readers = IndexReaders(self.root)
        self._db_lock = threading.Lock()
        self._lock_fd: int | None = None  # the writer lock file; None when opened read-only
        self._writer = False
        self._db: sqlite3.Connection | None = None
        #: called once with each damaged object quarantined, including those found by
        #: the start-up reconcile (the server counts them and changes its storage epoch)
        self.on_damage = on_damage
        self._reported: set[tuple[str, bytes]] = set()  # damage logged by a read-only view
        try:
            if read_only:
                if not (self.root / INDEX_FILE).exists():
                    raise StorageError(f"no object store at {self.root}")
            else:
                ensure_dir(self.root)
                self._lock_fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            self._db = connect(self.root)
            self._try_become_writer()
        except (OSError, sqlite3.Error, StorageError) as exc:
            self.close()
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot open object store at {self.root}: {exc}") from exc
        self._committer = GroupCommit(self._db, self._db_lock)

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "writer"
        return f"PackObjectStore({str(self.root)!r}, {mode})"

    @property
    def read_only(self) -> bool:
        """True unless this instance holds the writer lock; reads always work.

        A store not opened with ``read_only=True`` takes the lock as soon as it is free
        (at its next write after the other process closed the store), so a server started
        while an admin command held the lock still becomes the writer.
        """
        return not self._writer

    # --- the ObjectStore interface ------------------------------------------------------

    @converting
    def put_many(self, ns: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        check_namespace(ns)
        staged = [(check_oid(oid), blob) for oid, blob in items]
        space = self._space(ns)
        with space.lock:
            present = self._present(ns, space)
            stored = [oid for oid, _ in staged if oid in present and oid not in space.inflight]
        if stored:  # a re-upload of an id we hold: replace our copy if it is damaged
            self._verified(ns, self._readers.select_in(_ROW, ns, stored))
        candidates = {oid: blob for oid, blob in staged if oid not in present}
        digests = {oid: blob_digest(blob) for oid, blob in candidates.items()}
        waits: dict[int, Job] = {}
        fresh: dict[bytes, bytes] = {}
        with space.lock:
            for oid, blob in candidates.items():
                other = space.inflight.get(oid)
                if other is not None:
                    waits[id(other)] = other
                elif oid not in present:
                    fresh[oid] = blob
            job = self._append(ns, space, fresh, digests) if fresh else None
        if job is not None:
            try:
                self._committer.commit(job)
            finally:
                with space.lock:
                    for oid in fresh:
                        space.inflight.pop(oid, None)
                    if job.error is None:
                        present.update(fresh)
        for other in waits.values():  # the same ids, being written by another batch
            other.done.wait()
            raise_failed(other)
        return len(fresh)

    @converting
    def get(self, ns: str, oid: bytes) -> bytes:
        check_namespace(ns)
        check_oid(oid)
        query = f"SELECT {_ROW} FROM objects WHERE ns = ? AND oid = ?"  # nosec B608  # constant SQL
        row = self._reader().execute(query, (ns, oid)).fetchone()
        blob = self._verified(ns, [row] if row is not None else []).get(oid)
        if blob is None:  # absent, or damaged (and now quarantined): never served
            raise ObjectNotFound(f"object {oid.hex()} not found in namespace {ns}")
        return blob

    @converting
    def get_many(self, ns: str, oids: Sequence[bytes]) -> dict[bytes, bytes]:
        check_namespace(ns)
        wanted = list(dict.fromkeys(check_oid(oid) for oid in oids))
        return self._verified(ns, self._readers.select_in(_ROW, ns, wanted))

    @converting
    def has_many(self, ns: str, oids: Iterable[bytes]) -> set[bytes]:
        check_namespace(ns)
        wanted = [check_oid(oid) for oid in oids]
        if not self._writer and not self._try_become_writer():  # only the index is current
            return {row[0] for row in self._readers.select_in("oid", ns, wanted)}
        space = self._space(ns)
        with space.lock:
            present = self._present(ns, space)
        return {oid for oid in wanted if oid in present}

    @converting
    def list(self, ns: str) -> Iterator[bytes]:
        check_namespace(ns)
        self._reader()
        return self._readers.iter_ids(ns)

    @converting
    def delete_many(self, ns: str, oids: Iterable[bytes]) -> int:
        check_namespace(ns)
        wanted = [(ns, oid) for oid in dict.fromkeys(check_oid(oid) for oid in oids)]
        space = self._space(ns)
        with space.lock:
            present = self._present(ns, space)
            with self._db_lock:
                deleted: int = transact(
                    self._writer_db(),
                    lambda db: db.executemany(_DELETE, wanted).rowcount,
                )
            present.difference_update(oid for _, oid in wanted)
        return deleted

    @converting
    def stats(self, ns: str | None = None) -> StoreStats:
        where, args = ("WHERE ns = ?", (check_namespace(ns),)) if ns is not None else ("", ())
        query = f"SELECT COUNT(*), COALESCE(SUM(length), 0) FROM objects {where}"  # nosec B608
        count, total = self._reader().execute(query, args).fetchone()  # (constant SQL, ? values)
        return StoreStats(objects=count, bytes=total)

    @converting
    def check(self, ns: str | None = None, *, repair: bool = False) -> builtins.list[str]:
        """Re-verify every object; with ``repair`` quarantine the damaged (writer only).

        Quarantined objects no client has uploaded again are reported too: the data
        is still missing from the server until one does.
        """
        where, args = ("WHERE ns = ?", (check_namespace(ns),)) if ns is not None else ("", ())
        if repair:
            self._writer_db()
        rows = self._reader().execute(
            # B608: constant SQL, values bound as ?
            "SELECT ns, oid, pack, offset, length, digest FROM objects "  # nosec B608
            f"{where} ORDER BY ns, pack, offset",
            args,
        )
        problems, damages = heal.scan(rows, self._files.read)
        pending = heal.pending_lines(self._reader(), ns)
        if repair:
            for found in damages:
                self._damaged(found)
        note = "; quarantined until a client uploads it again" if repair else ""
        problems.extend(f"{d.name}: {d.reason}{note}" for d in damages)
        return problems + pending

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._files.close()
            self._readers.close()
            if self._db is not None:
                self._db.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock

    # --- opening and sweeping -----------------------------------------------------------

    def _try_become_writer(self) -> bool:
        """Take the writer lock if free; then migrate the schema and sweep crash leftovers."""
        with self._lock:
            if self._writer:
                return True
            if self._lock_fd is None or self._closed or self._db is None:
                return False
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute("PRAGMA secure_delete=ON")  # a purge leaves no ids behind
                migrate(self._db, self.root)
                self._sweep()
            except BaseException:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                raise
            self._files.become_writable()  # descriptors opened read-only cannot append
            self._writer = True
            return True

    def _sweep(self) -> None:
        """Undo what a crash or a damaged disk left (writer only): stray temp files, and
        packs that disagree with the index in either direction (heal.reconcile)."""
        assert self._db is not None  # nosec B101  # invariant for the type checker
        for stray in self.root.rglob("*.tmp"):
            stray.unlink()
        for damage in heal.reconcile(self._db, self.root):
            if self.on_damage is not None:
                self.on_damage(damage)

    # --- writing ------------------------------------------------------------------------

    def _writer_db(self) -> sqlite3.Connection:
        if self._closed or self._db is None:
            raise StorageError("object store is closed")
        if not self._writer and not self._try_become_writer():
            why = (
                "opened read-only"
                if self._lock_fd is None
                else f"another process holds {LOCK_FILE}"
            )
            raise StorageError(f"object store {self.root} is read-only here: {why}")
        return self._db

    def _space(self, ns: str) -> _Space:
        """The namespace's writer state, starting at the end of its newest pack."""
        self._writer_db()
        reader = self._reader()  # before taking the lock: opening one takes it too
        with self._lock:
            space = self._spaces.get(ns)
            if space is None:
                newest, size = self._files.newest(ns)
                # never append inside an indexed object, even if the pack shrank meanwhile
                end = max(size, heal.indexed_end(reader, ns, newest))
                space = self._spaces[ns] = _Space(pack=newest, end=end)
            return space

    def _present(self, ns: str, space: _Space) -> set[bytes]:
        """The committed ids of ``ns`` (call with ``space.lock`` held)."""
        if space.present is None:
            rows = self._reader().execute("SELECT oid FROM objects WHERE ns = ?", (ns,))
            space.present = {row[0] for row in rows}
        return space.present

    def _append(
        self, ns: str, space: _Space, fresh: dict[bytes, bytes], digests: dict[bytes, bytes]
    ) -> Job:
        """Append ``fresh`` to the current pack (call with ``space.lock`` held)."""
        total = sum(len(blob) for blob in fresh.values())
        if space.end and space.end + total > self._pack_size:
            space.pack, space.end = space.pack + 1, 0
        fd = self._files.append_fd(ns, space.pack)
        rows = append_rows(fd, ns, space.pack, space.end, fresh, digests)
        space.end += total
        job = Job(rows=rows, fds={fd})
        for oid in fresh:
            space.inflight[oid] = job
        return job

    # --- damage ------------------------------------------------------------------------

    def _verified(self, ns: str, rows: Iterable[Any]) -> dict[bytes, bytes]:
        """The blobs of these (oid, pack, offset, length, digest) rows that are intact.

        A blob that is cut short or fails its recorded digest is left out and
        quarantined (see heal.py): a damaged object is never served.
        """
        ordered = sorted(rows, key=lambda row: (row[1], row[2]))  # each pack front to back
        out: dict[bytes, bytes] = {}
        for row in ordered:
            found = heal.inspect(ns, row, self._files.read)
            if isinstance(found, Damage) and (moved := self._moved_row(ns, row)) is not None:
                found = heal.inspect(ns, moved, self._files.read)  # compacted meanwhile
            if isinstance(found, Damage):
                self._damaged(found)
            else:
                out[row[0]] = found
        return out

    def _moved_row(self, ns: str, row: Any) -> Any:
        """The object's current row if a compaction moved it since ``row`` was read."""
        query = f"SELECT {_ROW} FROM objects WHERE ns = ? AND oid = ?"  # nosec B608  # constant SQL
        now = self._reader().execute(query, (ns, row[0])).fetchone()
        return now if now is not None and tuple(now[1:3]) != tuple(row[1:3]) else None

    def compact(self, ns: str, threshold: float = compact.THRESHOLD) -> compact.CompactResult:
        """Rewrite the namespace's mostly dead packs, giving their space back (writer)."""
        return converting(compact.compact)(self, check_namespace(ns), threshold)

    @converting
    def scrub(self) -> None:
        """Leave no trace of deleted rows in the index files (secure_delete is on):
        fold the WAL into the database and truncate it (a purge's last step)."""
        with self._db_lock:
            self._writer_db().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _damaged(self, damage: Damage) -> None:
        """Quarantine a damaged object (writer), log it once and report it to the hook."""
        if not self._writer and not self._try_become_writer():
            key = (damage.ns, damage.oid)
            if key not in self._reported:  # a read-only view cannot quarantine: just say so
                self._reported.add(key)
                heal.log_damage(
                    damage, "not served (read-only view; the writer will quarantine it)"
                )
            return
        space = self._space(damage.ns)
        with space.lock:
            present = self._present(damage.ns, space)
            with self._db_lock:
                moved = transact(self._writer_db(), lambda db: heal.quarantine(db, [damage]))
            if moved:
                present.discard(damage.oid)
        if moved:
            heal.log_damage(
                damage, "quarantined: it reads as missing until a client uploads it again"
            )
            if self.on_damage is not None:
                self.on_damage(damage)

    # --- reading ------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection to the index (WAL: never blocks the writer)."""
        return self._readers.get()
