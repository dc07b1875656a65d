"""The folder's local index: one LMDB environment in ``DIR/.chunksync/index/``.

What it holds (named sub-databases):

* ``stat``      relative POSIX path -> :class:`FileState` (the stat cache that lets a
  rescan skip unchanged files, like borg's files cache);
* ``objects``   object id -> kind byte ‖ plaintext of manifests, trees and commits made
  or fetched here (the Merkle tree cache);
* ``known``     object ids known to be on the server (upload skips them);
* ``dirtree``   relative directory path -> tree id of its last scan ("" is the root);
* ``meta``      str -> bytes (base snapshot, highest accepted commit seq, device id...);
* ``events``    u64 sequence -> JSON event (the local change log, kept while offline);
* ``conflicts`` path -> JSON record.

Guarantees:

* **All-or-nothing writes.** :meth:`Index.write` is one LMDB write transaction:
  committed (and synced to disk, LMDB's default) when the block ends normally,
  aborted on an exception. A crash at any point leaves exactly the last committed
  state, because LMDB is copy-on-write with a durable meta-page switch.
* **The map grows by itself.** If a transaction fills the map, it is aborted, the map
  doubled and the operations of that transaction replayed, invisibly to the caller.
* Reads are short read transactions, never held across a ``yield``: iterators read in
  batches, so a resize never runs under an open reader of this process.

* **Damage is never trusted.** Every record read back is checked whole
  (:mod:`.records`, :mod:`.meta`). A file LMDB cannot open is moved aside at open; a
  record that does not decode, or an LMDB error in a read or write of an opened index,
  raises :class:`~chunksync.errors.IndexDamaged` and leaves a mark
  (``index.damaged``): the sync engine then rebuilds it in place (:meth:`Index.rebuild`) and
  runs its round again, and a later :meth:`Index.open` rebuilds a marked index, with
  one warning line either way.

The index is a cache plus the device's own small state; everything in ``objects`` and
``stat`` can be rebuilt by a full rescan and a fetch. What cannot be rebuilt lives
elsewhere: the rollback guard in ``.chunksync/trust`` (:mod:`.trust`). A rebuilt index
has no base, so the next sync merges without one: nothing is deleted on either side,
and a file that differs is kept as a conflicted copy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import lmdb

from ..errors import ConfigError, IndexDamaged
from ..objects import ObjectId, ObjectKind
from .damage import DAMAGE, DAMAGED_MARK, UNUSABLE, mark_path, marked_by_other, move_aside
from .index_format import check_format, stamp
from .meta import meta_problem
from .records import (
    KEEP,
    FileState,
    RecordDamaged,
    decode_conflict,
    decode_event,
    decode_object,
    decode_path_record,
    decode_tree_id,
    path_key,
)
from .writer import IndexWriter

__all__ = ["DAMAGED_MARK", "FileState", "Index", "IndexWriter", "index_dir"]

log = logging.getLogger(__name__)

_DBS = ("stat", "objects", "known", "dirtree", "meta", "events", "conflicts")
_BATCH = 512


def index_dir(root: Path) -> Path:
    """Where a folder's index lives."""
    return root / ".chunksync" / "index"


def _open_env(path: Path, map_size: int) -> lmdb.Environment:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return lmdb.open(os.fspath(path), map_size=map_size, max_dbs=len(_DBS) + 1, subdir=True)
    except UNUSABLE:
        raise
    except (lmdb.Error, OSError) as exc:
        raise ConfigError(f"cannot open index at {path}: {exc}") from exc


class Index:
    """A folder's LMDB index. Thread-safe; one writer at a time (LMDB's rule)."""

    def __init__(self, env: lmdb.Environment, path: Path, map_size: int = 64 << 20) -> None:
        self._env = env
        self.path = path
        self._map_size = map_size
        self._dbs = {name: env.open_db(name.encode()) for name in _DBS}
        self._write_lock = threading.Lock()
        self._readers = 0
        self._readers_cv = threading.Condition()
        #: why this index was found damaged (None while it is sound): see :meth:`rebuild`
        self.damaged: str | None = None

    @classmethod
    def open(cls, path: Path, *, map_size: int = 64 << 20) -> Index:
        """Open (creating if needed) the index in directory ``path``.

        The index is a cache: one that LMDB finds invalid or corrupt, or that a process
        marked damaged (and no longer has open), is moved aside (``index.broken-<time>``,
        the newest one kept) and an empty one is made, with one warning.
        """
        mark = mark_path(path)
        if mark.exists() and not marked_by_other(path):
            aside = move_aside(path)
            log.warning("index at %s was marked damaged: moved to %s and rebuilt", path, aside)
        try:
            return cls._open(path, map_size)
        except UNUSABLE as exc:
            aside = move_aside(path)
            log.warning(
                "index at %s could not be read (%s): moved to %s and rebuilt", path, exc, aside
            )
            return cls._open(path, map_size)

    @classmethod
    def _open(cls, path: Path, map_size: int) -> Index:
        env = _open_env(path, map_size)
        try:
            index = cls(env, path, map_size)
        except lmdb.Error:
            env.close()
            raise
        try:
            if check_format(index):  # an old format with no migration: rebuild the cache
                index.damaged = "an old index format"
                index.rebuild()
        except BaseException:
            index.close()
            raise
        return index

    def is_empty(self) -> bool:
        """Whether nothing at all was ever written (a new index)."""
        with self._read() as txn:
            return all(txn.stat(self._dbs[name])["entries"] == 0 for name in _DBS)

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r})"

    # -- damage --------------------------------------------------------------------

    def _mark_damaged(self, what: str, exc: BaseException) -> NoReturn:
        """Remember the damage (here and in ``index.damaged``) and raise IndexDamaged."""
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        self.damaged = self.damaged or f"{what}: {reason}"
        with contextlib.suppress(OSError):
            mark_path(self.path).write_text(f"{os.getpid()}\n")
        raise IndexDamaged(
            f"the local index at {self.path} is damaged ({what}: {reason}); it is rebuilt on "
            "the next sync, and no file is lost"
        ) from exc

    @contextmanager
    def _checked(self, what: str) -> Iterator[None]:
        try:
            yield
        except DAMAGE as exc:  # (a full map is not damage: write() grows it)
            self._mark_damaged(what, exc)

    def rebuild(self) -> None:
        """Move this index aside and carry on with an empty one, in place: every holder
        of this object sees the new one. For a damaged index (one warning line); the
        caller must hold no read or write of it."""
        with self._write_lock, self._readers_cv:
            self._readers_cv.wait_for(lambda: self._readers == 0)
            with contextlib.suppress(lmdb.Error):
                self._env.close()
            reason, self.damaged = self.damaged or "asked to", None
            aside = move_aside(self.path)
            self._env = _open_env(self.path, self._map_size)
            self._dbs = {name: self._env.open_db(name.encode()) for name in _DBS}
        stamp(self)
        log.warning(
            "index at %s was damaged (%s): moved to %s and rebuilt", self.path, reason, aside
        )

    # -- reads ---------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[lmdb.Transaction]:
        with self._readers_cv:
            self._readers += 1
        try:
            try:
                txn = self._env.begin()
            except lmdb.MapResizedError:
                self._env.set_mapsize(0)  # another process grew the map: adopt its size
                txn = self._env.begin()
            with txn:
                yield txn
        finally:
            with self._readers_cv:
                self._readers -= 1
                self._readers_cv.notify_all()

    def _get(self, db: str, key: bytes) -> bytes | None:
        with self._checked(f"reading {db}"), self._read() as txn:
            value = txn.get(key, db=self._dbs[db])
            return None if value is None else bytes(value)

    def _scan(
        self, db: str, start: bytes, stop: Callable[[bytes], bool]
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items from ``start`` on, in key order, until ``stop(key)``; short txns."""
        key = start
        skip_first = False
        while True:
            batch: list[tuple[bytes, bytes]] = []
            done = False
            with (
                self._checked(f"reading {db}"),
                self._read() as txn,
                txn.cursor(db=self._dbs[db]) as cur,
            ):
                if not (cur.set_range(key) if key else cur.first()):
                    return
                for raw_key, v in cur:
                    k = bytes(raw_key)  # lmdb gives bytes (buffers are off); typed loosely
                    if skip_first and k == key:
                        continue
                    if stop(k):
                        done = True
                        break
                    batch.append((k, bytes(v)))
                    if len(batch) >= _BATCH:
                        break
                else:
                    done = True
            yield from batch
            if done or not batch:
                return
            key, skip_first = batch[-1][0], True

    def _decoded(
        self, db: str, items: Iterable[tuple[bytes, bytes]], decode: Callable[..., Any]
    ) -> Iterator[Any]:
        for k, v in items:
            try:  # (not _checked: a context manager per record would double the cost)
                item = decode(k, v)
            except DAMAGE as exc:
                self._mark_damaged(f"reading {db}", exc)
            yield item

    def get_state(self, path: str) -> FileState | None:
        raw = self._get("stat", path_key(path))
        if raw is None:
            return None
        with self._checked("reading stat"):
            return FileState.decode(*decode_path_record("stat", path_key(path), raw))

    def iter_states(self, prefix: str = "") -> Iterator[FileState]:
        """States whose path starts with ``prefix`` (a plain string prefix), in key
        order: sorted by path, except that paths longer than 447 bytes sharing those
        447 bytes come in hash order."""
        pre = prefix.encode()[:KEEP]
        items = self._scan("stat", pre, lambda k: not k.startswith(pre))
        for state in self._decoded(
            "stat", items, lambda k, v: FileState.decode(*decode_path_record("stat", k, v))
        ):
            if state.path.startswith(prefix):
                yield state

    def get_object(self, oid: ObjectId) -> tuple[ObjectKind, bytes] | None:
        raw = self._get("objects", bytes(oid))
        if raw is None:
            return None
        with self._checked("reading objects"):
            return decode_object(raw)

    def object_damaged(self, oid: ObjectId, why: str) -> NoReturn:
        """A cached object whose plaintext does not match its id (checked by those who
        hold the keys): the index is damaged."""
        self._mark_damaged(
            "reading objects", RecordDamaged(f"object {bytes(oid).hex()[:12]} {why}")
        )

    def known(self, oid: ObjectId) -> bool:
        return self._get("known", bytes(oid)) is not None

    def scan_known(self) -> Iterator[tuple[bytes, bytes]]:
        """Every id of the "known on the server" cache (short read transactions)."""
        return self._scan("known", b"", lambda k: False)

    def known_many(self, oids: Iterable[ObjectId]) -> set[ObjectId]:
        db = self._dbs["known"]
        with self._checked("reading known"), self._read() as txn:
            return {oid for oid in oids if txn.get(bytes(oid), db=db) is not None}

    def get_dirtree(self, path: str) -> ObjectId | None:
        raw = self._get("dirtree", path_key(path))
        if raw is None:
            return None
        with self._checked("reading dirtree"):
            return decode_tree_id(decode_path_record("dirtree", path_key(path), raw)[1])

    def iter_dirtrees(self, prefix: str = "") -> Iterator[tuple[str, ObjectId]]:
        """Dirtree rows whose path starts with ``prefix`` (a plain string prefix)."""

        def decode(k: bytes, v: bytes) -> tuple[str, ObjectId]:
            path, raw = decode_path_record("dirtree", k, v)
            return path, decode_tree_id(raw)

        pre = prefix.encode()[:KEEP]
        items = self._scan("dirtree", pre, lambda k: not k.startswith(pre))
        for path, oid in self._decoded("dirtree", items, decode):
            if path.startswith(prefix):
                yield path, oid

    def get_meta(self, key: str) -> bytes | None:
        raw = self._get("meta", key.encode())
        problem = None if raw is None else meta_problem(key, raw)
        if problem:
            self._mark_damaged("reading meta", RecordDamaged(problem))
        return raw

    def iter_events(self, after: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        items = self._scan("events", struct.pack(">Q", after + 1), lambda k: False)
        yield from self._decoded("events", items, decode_event)

    def iter_conflicts(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield from self._decoded(
            "conflicts", self._scan("conflicts", b"", lambda k: False), decode_conflict
        )

    # -- writes --------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[IndexWriter]:
        """One write transaction: committed if the block succeeds, aborted otherwise."""
        with self._write_lock:
            with self._checked("starting a write"):
                txn = self._env.begin(write=True)
            writer = IndexWriter(txn, self._dbs, self._grow_and_replay, self._mark_damaged)
            try:
                yield writer
            except BaseException:
                with contextlib.suppress(lmdb.Error):
                    writer._txn.abort()
                raise
            while True:
                try:
                    with self._checked("committing"):
                        writer._txn.commit()
                    return
                except lmdb.MapFullError:
                    writer._txn = self._grow_and_replay(writer)

    def _grow_and_replay(self, writer: IndexWriter) -> lmdb.Transaction:
        while True:
            self._resize(self._env.info()["map_size"] * 2)
            txn = self._env.begin(write=True)
            try:
                writer._replay(txn)
                return txn
            except lmdb.MapFullError:
                txn.abort()

    def _resize(self, new_size: int) -> None:
        with self._readers_cv:
            self._readers_cv.wait_for(lambda: self._readers == 0)
            self._env.set_mapsize(new_size)
