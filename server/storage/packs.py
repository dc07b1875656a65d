"""PackObjectStore: the embedded disk backend — append-only packs plus a SQLite index.

Layout under ``root`` (``DATA/objects``)::

    index.sqlite[-wal,-shm]     objects(ns, oid, pack, offset, length, digest), WAL
    writer.lock                 flock held by the one process allowed to write
    <ns>/packs/<n>.pack         blobs appended back to back, rolled at ``pack_size``

Why it is safe (borg/restic style): ``put_many`` appends the new blobs of a batch to the
namespace's current pack, ``fdatasync``s the pack, and only then inserts their index
rows in one transaction (``synchronous=FULL``). Only indexed objects are visible, so an
interrupted append is invisible; at open the writer truncates each pack back to the end
of its last indexed object and deletes stray ``*.tmp`` files. A whole batch becomes
visible at once.

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
a compaction (not implemented yet) rewrites packs whose live extents have shrunk.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from chunksync.errors import ObjectNotFound
from chunksync.wire import blob_digest

from . import heal
from .base import NAMESPACE, StorageError, StoreStats, check_namespace, check_oid, storage_error
from .heal import Damage
from .packio import (
    GroupCommit, Job, Row, ensure_dir, fsync_dir, raise_failed, transact, write_all,
)

__all__ = ["PACK_SIZE", "PackObjectStore"]

PACK_SIZE = 256 * 1024 * 1024
INDEX_FILE = "index.sqlite"
LOCK_FILE = "writer.lock"
_SQL_CHUNK = 30_000  # bound parameters per IN (...) query (SQLite allows 32,766)
_LIST_PAGE = 10_000
_MAX_CACHED_FDS = 512  # packs kept open for reading; others are opened per read

_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS objects (ns TEXT NOT NULL, oid BLOB NOT NULL,"
        " pack INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,"
        " digest BLOB NOT NULL, PRIMARY KEY (ns, oid)) WITHOUT ROWID"
    ),
    "CREATE INDEX IF NOT EXISTS objects_extent ON objects (ns, pack, offset)",
    heal.QUARANTINE_SCHEMA,
)
_DELETE = "DELETE FROM objects WHERE ns = ? AND oid = ?"
_SCHEMA_VERSION = 2  # 2: the quarantine table (heal.py)
_F = TypeVar("_F", bound=Callable[..., Any])

@dataclass(slots=True)
class _Space:
    """Writer-side state of one namespace; every field is guarded by ``lock``."""

    pack: int  # number of the pack being appended to
    end: int  # append offset in that pack
    lock: threading.Lock = field(default_factory=threading.Lock)
    present: set[bytes] | None = None  # committed ids, loaded on first use
    inflight: dict[bytes, Job] = field(default_factory=dict)


def _converting(method: _F) -> _F:
    """Turn SQLite and OS errors escaping a public method into a one-line StorageError."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(exc, "object store failed") from exc

    return cast(_F, wrapper)


class _Gone(StorageError):
    """The object's bytes are not in its pack (cut short or deleted): damage, not I/O."""


def _pack_number(path: Path) -> int | None:
    return int(path.stem) if path.suffix == ".pack" and path.stem.isdigit() else None


def _chunks(items: Sequence[bytes]) -> Iterator[Sequence[bytes]]:
    for start in range(0, len(items), _SQL_CHUNK):
        yield items[start : start + _SQL_CHUNK]


class PackObjectStore:
    """The embedded disk :class:`server.storage.base.ObjectStore` (see module doc).

    Args:
        root: the ``objects`` directory; created if missing.
        pack_size: a pack is rolled once an append would take it past this size.
    """

    def __init__(
        self, root: Path | str, *, pack_size: int = PACK_SIZE, read_only: bool = False
    ) -> None:
        self.root = Path(root)
        self._pack_size = pack_size
        self._closed = False
        self._lock = threading.Lock()  # guards _spaces, _fds, _retired, _readers, _writer
        self._spaces: dict[str, _Space] = {}
        self._fds: dict[tuple[str, int], int] = {}
        self._retired: list[int] = []  # read-only descriptors replaced on becoming writer
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._db_lock = threading.Lock()
        self._lock_fd: int | None = None  # the writer lock file; None when opened read-only
        self._writer = False
        self._db: sqlite3.Connection | None = None
        #: called with each damaged object found (the server counts them in a metric)
        self.on_damage: Callable[[Damage], None] | None = None
        self._reported: set[tuple[str, bytes]] = set()  # damage logged by a read-only view
        try:
            if read_only:
                if not (self.root / INDEX_FILE).exists():
                    raise StorageError(f"no object store at {self.root}")
            else:
                ensure_dir(self.root)
                self._lock_fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            self._db = self._connect()
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

    @_converting
    def put_many(self, ns: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        check_namespace(ns)
        staged = [(check_oid(oid), blob) for oid, blob in items]
        space = self._space(ns)
        with space.lock:
            present = self._present(ns, space)
            stored = [oid for oid, _ in staged if oid in present and oid not in space.inflight]
        if stored:  # a re-upload of an id we hold: replace our copy if it is damaged
            self._verified(ns, self._select_in("oid, pack, offset, length, digest", ns, stored))
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

    @_converting
    def get(self, ns: str, oid: bytes) -> bytes:
        check_namespace(ns)
        check_oid(oid)
        row = (
            self._reader()
            .execute(
                "SELECT oid, pack, offset, length, digest FROM objects WHERE ns = ? AND oid = ?",
                (ns, oid),
            )
            .fetchone()
        )
        blob = self._verified(ns, [row] if row is not None else []).get(oid)
        if blob is None:  # absent, or damaged (and now quarantined): never served
            raise ObjectNotFound(f"object {oid.hex()} not found in namespace {ns}")
        return blob

    @_converting
    def get_many(self, ns: str, oids: Sequence[bytes]) -> dict[bytes, bytes]:
        check_namespace(ns)
        wanted = list(dict.fromkeys(check_oid(oid) for oid in oids))
        return self._verified(ns, self._select_in("oid, pack, offset, length, digest", ns, wanted))

    @_converting
    def has_many(self, ns: str, oids: Iterable[bytes]) -> set[bytes]:
        check_namespace(ns)
        wanted = [check_oid(oid) for oid in oids]
        if not self._writer and not self._try_become_writer():  # only the index is current
            return {row[0] for row in self._select_in("oid", ns, wanted)}
        space = self._space(ns)
        with space.lock:
            present = self._present(ns, space)
        return {oid for oid in wanted if oid in present}

    @_converting
    def list(self, ns: str) -> Iterator[bytes]:
        check_namespace(ns)
        self._reader()
        return self._iter_ids(ns)

    @_converting
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

    @_converting
    def stats(self, ns: str | None = None) -> StoreStats:
        where, args = ("WHERE ns = ?", (check_namespace(ns),)) if ns is not None else ("", ())
        query = f"SELECT COUNT(*), COALESCE(SUM(length), 0) FROM objects {where}"  # nosec B608
        count, total = self._reader().execute(query, args).fetchone()  # (constant SQL, ? values)
        return StoreStats(objects=count, bytes=total)

    @_converting
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
        problems: list[str] = []
        damages: list[Damage] = []
        extent: tuple[str, int] | None = None
        extent_end = 0
        for space, oid, pack, offset, length, digest in rows:
            name = f"{space}/{oid.hex()}"
            if extent != (space, pack):
                extent, extent_end = (space, pack), 0
            if offset < extent_end:
                problems.append(f"{name}: overlaps the previous object in pack {pack}")
            extent_end = max(extent_end, offset + length)
            try:
                blob = self._read(space, pack, offset, length)
            except _Gone as exc:
                damages.append(Damage(space, oid, pack, offset, length, digest,
                                      f"unreadable: {exc}"))
                continue
            except StorageError as exc:
                problems.append(f"{name}: unreadable: {exc}")
                continue
            if blob_digest(blob) != digest:
                damages.append(Damage(space, oid, pack, offset, length, digest,
                                      f"digest mismatch in pack {pack} at offset {offset}"))
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
            for fd in [*self._fds.values(), *self._retired]:
                os.close(fd)
            self._fds.clear()
            self._retired.clear()
            for conn in self._readers:
                conn.close()
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
                self._migrate()
                self._sweep()
            except BaseException:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                raise
            self._retired.extend(self._fds.values())  # opened read-only: no good to append
            self._fds.clear()
            self._writer = True
            return True

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self.root / INDEX_FILE, isolation_level=None, check_same_thread=False, timeout=30.0
        )

    def _migrate(self) -> None:
        assert self._db is not None  # nosec B101  # invariant for the type checker
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > _SCHEMA_VERSION:
            raise StorageError(f"object index {self.root / INDEX_FILE} is from a newer version")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

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
                packs = self.root / ns / "packs"
                numbers = [n for p in packs.glob("*.pack") if (n := _pack_number(p)) is not None]
                newest = max(numbers, default=0)
                path = packs / f"{newest}.pack"
                size = path.stat().st_size if path.exists() else 0
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
        fd = self._append_fd(ns, space.pack)
        rows: list[Row] = []
        offset = space.end
        for oid, blob in fresh.items():
            rows.append((ns, oid, space.pack, offset, len(blob), digests[oid]))
            offset += len(blob)
        try:
            write_all(fd, list(fresh.values()), space.end)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, space.end)
            raise storage_error(exc, "object store write failed") from exc
        space.end = offset
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
        for oid, pack, offset, length, digest in ordered:
            try:
                blob = self._read(ns, pack, offset, length)
            except _Gone as exc:
                self._damaged(Damage(ns, oid, pack, offset, length, digest, f"unreadable: {exc}"))
                continue
            if blob_digest(blob) != digest:
                reason = f"digest mismatch in pack {pack} at offset {offset}"
                self._damaged(Damage(ns, oid, pack, offset, length, digest, reason))
                continue
            out[oid] = blob
        return out

    def _damaged(self, damage: Damage) -> None:
        """Quarantine a damaged object (writer), log it once and report it to the hook."""
        if not self._writer and not self._try_become_writer():
            key = (damage.ns, damage.oid)
            if key not in self._reported:  # a read-only view cannot quarantine: just say so
                self._reported.add(key)
                heal.log_damage(damage, "not served (read-only view; the writer will quarantine it)")
            return
        space = self._space(damage.ns)
        with space.lock:
            present = self._present(damage.ns, space)
            with self._db_lock:
                moved = transact(self._writer_db(), lambda db: heal.quarantine(db, [damage]))
            if moved:
                present.discard(damage.oid)
        if moved:
            heal.log_damage(damage, "quarantined: it reads as missing until a client uploads it again")
            if self.on_damage is not None:
                self.on_damage(damage)

    # --- reading ------------------------------------------------------------------------

    def _pack_path(self, ns: str, pack: int) -> Path:
        return self.root / ns / "packs" / f"{pack}.pack"

    def _append_fd(self, ns: str, pack: int) -> int:
        """The (cached) descriptor to append to a pack, creating the pack durably."""
        with self._lock:
            if self._closed:
                raise StorageError("object store is closed")
            fd = self._fds.get((ns, pack))
            if fd is None:
                path = self._pack_path(ns, pack)
                ensure_dir(path.parent)
                existed = path.exists()
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                if not existed:
                    fsync_dir(path.parent)
                self._fds[(ns, pack)] = fd
            return fd

    def _read_fd(self, ns: str, pack: int) -> int | None:
        """The cached descriptor to read a pack; None once the cache is full."""
        with self._lock:
            if self._closed:
                raise StorageError("object store is closed")
            fd = self._fds.get((ns, pack))
            if fd is None and len(self._fds) < _MAX_CACHED_FDS:
                flags = os.O_RDWR if self._writer else os.O_RDONLY
                fd = self._fds[(ns, pack)] = os.open(self._pack_path(ns, pack), flags)
            return fd

    def _read(self, ns: str, pack: int, offset: int, length: int) -> bytes:
        fd: int | None = None
        transient = False
        try:
            fd = self._read_fd(ns, pack)
            if fd is None:  # too many packs to keep open: open this one for this read
                fd, transient = os.open(self._pack_path(ns, pack), os.O_RDONLY), True
            blob = os.pread(fd, length, offset)
        except FileNotFoundError as exc:
            raise _Gone(f"pack {ns}/{pack} is gone") from exc
        except OSError as exc:
            raise StorageError(f"cannot read pack {ns}/{pack}: {exc.strerror}") from exc
        finally:
            if transient and fd is not None:
                os.close(fd)
        if len(blob) != length:
            raise _Gone(f"pack {ns}/{pack} ends before offset {offset + length}")
        return blob

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection to the index (WAL: never blocks the writer)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if self._closed:
                    raise StorageError("object store is closed")
                try:
                    conn = self._connect()
                except sqlite3.Error as exc:
                    raise StorageError(f"cannot open object index: {exc}") from exc
                self._readers.append(conn)
            self._local.conn = conn
        elif self._closed:
            raise StorageError("object store is closed")
        return conn

    def _select_in(self, columns: str, ns: str, oids: Sequence[bytes]) -> Iterator[Any]:
        """Index rows of those ``oids`` present in ``ns``, in chunks of bound parameters."""
        for chunk in _chunks(oids):
            marks = ",".join("?" * len(chunk))
            # B608: constant SQL, values bound as ?
            query = f"SELECT {columns} FROM objects WHERE ns = ? AND oid IN ({marks})"  # nosec B608
            yield from self._reader().execute(query, (ns, *chunk))

    def _iter_ids(self, ns: str) -> Iterator[bytes]:
        """Page through the ids by key, so no read transaction stays open between pages."""
        last = b""
        while True:
            try:
                page = [
                    row[0]
                    for row in self._reader().execute(
                        "SELECT oid FROM objects WHERE ns = ? AND oid > ? ORDER BY oid LIMIT ?",
                        (ns, last, _LIST_PAGE),
                    )
                ]
            except sqlite3.Error as exc:
                raise StorageError(f"object store failed: {exc}") from exc
            yield from page
            if len(page) < _LIST_PAGE:
                return
            last = page[-1]
