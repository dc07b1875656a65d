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

The index is a cache plus the device's own small state; everything in ``objects`` and
``stat`` can be rebuilt by a full rescan and a fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from ..errors import ConfigError
from ..objects import ID_SIZE, ObjectId, ObjectKind

__all__ = ["FileState", "Index", "IndexWriter", "index_dir"]

log = logging.getLogger(__name__)

_DBS = ("stat", "objects", "known", "dirtree", "meta", "events", "conflicts")
_STATE = struct.Struct(">qqqQIB32s")  # size, mtime, ctime, inode, mode, flags, manifest
_FLAG_RACY = 1
_BATCH = 512
_PATH_LEN = struct.Struct(">H")
_MAX_KEY = 480  # LMDB's default limit is 511 bytes
_KEEP = _MAX_KEY - 33


def _path_key(path: str) -> bytes:
    """LMDB key of a path: its UTF-8 bytes, or for very long paths a prefix plus a hash.

    Values of path-keyed databases always start with the full path, so the key only
    has to be unique and keep prefix order for the first ``_KEEP`` bytes.
    """
    raw = path.encode()
    if not raw:
        return b"\x00"
    if len(raw) <= _MAX_KEY:
        return raw
    return raw[:_KEEP] + b"\x00" + hashlib.blake2b(raw, digest_size=32).digest()


def _with_path(path: str, payload: bytes) -> bytes:
    raw = path.encode()
    return _PATH_LEN.pack(len(raw)) + raw + payload


def _split_path(value: bytes) -> tuple[str, bytes]:
    (n,) = _PATH_LEN.unpack_from(value)
    return value[2 : 2 + n].decode(), value[2 + n :]


def index_dir(root: Path) -> Path:
    """Where a folder's index lives."""
    return root / ".chunksync" / "index"


@dataclass(frozen=True, slots=True)
class FileState:
    """The stat-cache row of one file: what it looked like when it was last hashed.

    ``racy`` marks a file whose mtime was too close to the scan time to trust (as in
    git's racy-clean check): the next scan reads it again even if the stat matches.
    """

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    mode: int
    manifest_id: ObjectId
    racy: bool = False

    def encode(self) -> bytes:
        flags = _FLAG_RACY if self.racy else 0
        return _STATE.pack(
            self.size, self.mtime_ns, self.ctime_ns, self.inode, self.mode, flags, self.manifest_id
        )

    @classmethod
    def decode(cls, path: str, raw: bytes) -> FileState:
        size, mtime, ctime, inode, mode, flags, manifest = _STATE.unpack(raw)
        return cls(path, size, mtime, ctime, inode, mode, ObjectId(manifest), bool(flags & 1))


class IndexWriter:
    """Operations of one write transaction. Obtained from :meth:`Index.write` only."""

    __slots__ = ("_dbs", "_grow", "_log", "_next_seq", "_txn")

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: dict[str, Any],
        grow: Callable[[IndexWriter], lmdb.Transaction],
    ) -> None:
        self._txn = txn
        self._dbs = dbs
        self._grow = grow
        self._log: list[tuple[str, tuple[Any, ...]]] = []
        self._next_seq: int | None = None

    # Every op is logged: when the map is full, the transaction is aborted, the map
    # grown and the log replayed into a new transaction, so callers never see it.
    def _do(self, op: str, *args: Any) -> None:
        self._log.append((op, args))
        try:
            getattr(self, "_" + op)(*args)
        except lmdb.MapFullError:
            self._txn.abort()
            self._txn = self._grow(self)

    def put_state(self, state: FileState) -> None:
        self._do("put", "stat", _path_key(state.path), _with_path(state.path, state.encode()))

    def delete_state(self, path: str) -> None:
        self._do("delete", "stat", _path_key(path))

    def put_object(self, oid: ObjectId, kind: ObjectKind, data: bytes) -> None:
        self._do("put", "objects", bytes(oid), bytes([int(kind)]) + data)

    def add_known(self, oids: Iterable[ObjectId]) -> None:
        for oid in oids:
            self._do("put", "known", bytes(oid), b"")

    def put_dirtree(self, path: str, tree_id: ObjectId) -> None:
        self._do("put", "dirtree", _path_key(path), _with_path(path, bytes(tree_id)))

    def delete_dirtree(self, path: str) -> None:
        self._do("delete", "dirtree", _path_key(path))

    def set_meta(self, key: str, value: bytes) -> None:
        self._do("put", "meta", key.encode(), bytes(value))

    def delete_meta(self, key: str) -> None:
        self._do("delete", "meta", key.encode())

    def append_event(self, event: dict[str, Any]) -> int:
        """Append to the event log; returns the event's sequence number (from 1)."""
        if self._next_seq is None:
            with self._txn.cursor(db=self._dbs["events"]) as cur:
                self._next_seq = struct.unpack(">Q", cur.key())[0] + 1 if cur.last() else 1
        seq = self._next_seq
        self._next_seq += 1
        self._do("put", "events", struct.pack(">Q", seq), _dump(event))
        return seq

    def put_conflict(self, path: str, record: dict[str, Any]) -> None:
        self._do("put", "conflicts", _path_key(path), _with_path(path, _dump(record)))

    def delete_conflict(self, path: str) -> None:
        self._do("delete", "conflicts", _path_key(path))

    def _put(self, db: str, key: bytes, value: bytes, txn: lmdb.Transaction | None = None) -> None:
        (txn or self._txn).put(key, value, db=self._dbs[db])

    def _delete(self, db: str, key: bytes, txn: lmdb.Transaction | None = None) -> None:
        (txn or self._txn).delete(key, db=self._dbs[db])

    def _replay(self, txn: lmdb.Transaction) -> None:
        for op, args in self._log:
            getattr(self, "_" + op)(*args, txn=txn)


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class Index:
    """A folder's LMDB index. Thread-safe; one writer at a time (LMDB's rule)."""

    def __init__(self, env: lmdb.Environment, path: Path) -> None:
        self._env = env
        self.path = path
        self._dbs = {name: env.open_db(name.encode()) for name in _DBS}
        self._write_lock = threading.Lock()
        self._readers = 0
        self._readers_cv = threading.Condition()

    @classmethod
    def open(cls, path: Path, *, map_size: int = 64 << 20) -> Index:
        """Open (creating if needed) the index in directory ``path``.

        The index is a cache: one that LMDB finds invalid or corrupt is moved aside
        (``index.broken-<time>``, the newest one kept) and an empty one is made, with one
        warning. The next sync then merges without a base, which deletes nothing on
        either side, and the rollback guard falls back to ``.chunksync/trust``.
        """
        try:
            return cls._open(path, map_size)
        except (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError,
                lmdb.BadRslotError, lmdb.PageNotFoundError) as exc:
            aside = path.with_name(f"{path.name}.broken-{int(time.time())}")
            for old in path.parent.glob(f"{path.name}.broken-*"):
                shutil.rmtree(old, ignore_errors=True)
            os.replace(path, aside)
            log.warning("index at %s could not be read (%s): moved to %s and rebuilt", path, exc, aside.name)
            return cls._open(path, map_size)

    @classmethod
    def _open(cls, path: Path, map_size: int) -> Index:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            env = lmdb.open(
                os.fspath(path), map_size=map_size, max_dbs=len(_DBS) + 1, subdir=True
            )
        except (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError,
                lmdb.BadRslotError, lmdb.PageNotFoundError):
            raise
        except (lmdb.Error, OSError) as exc:
            raise ConfigError(f"cannot open index at {path}: {exc}") from exc
        try:
            return cls(env, path)
        except lmdb.Error:
            env.close()
            raise

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r})"

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
        with self._read() as txn:
            return txn.get(key, db=self._dbs[db])

    def _scan(
        self, db: str, start: bytes, stop: Callable[[bytes], bool]
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items from ``start`` on, in key order, until ``stop(key)``; short txns."""
        key = start
        skip_first = False
        while True:
            batch: list[tuple[bytes, bytes]] = []
            with self._read() as txn, txn.cursor(db=self._dbs[db]) as cur:
                if not (cur.set_range(key) if key else cur.first()):
                    return
                for k, v in cur:
                    if skip_first and k == key:
                        continue
                    if stop(k):
                        yield from batch
                        return
                    batch.append((k, v))
                    if len(batch) >= _BATCH:
                        break
                else:
                    yield from batch
                    return
            yield from batch
            key, skip_first = batch[-1][0], True

    def get_state(self, path: str) -> FileState | None:
        raw = self._get("stat", _path_key(path))
        return None if raw is None else FileState.decode(*_split_path(raw))

    def iter_states(self, prefix: str = "") -> Iterator[FileState]:
        """States whose path starts with ``prefix`` (a plain string prefix), in key
        order: sorted by path, except that paths longer than 447 bytes sharing those
        447 bytes come in hash order."""
        pre = prefix.encode()[:_KEEP]
        for _k, v in self._scan("stat", pre, lambda k: not k.startswith(pre)):
            state = FileState.decode(*_split_path(v))
            if state.path.startswith(prefix):
                yield state

    def get_object(self, oid: ObjectId) -> tuple[ObjectKind, bytes] | None:
        raw = self._get("objects", bytes(oid))
        return None if raw is None else (ObjectKind(raw[0]), raw[1:])

    def known(self, oid: ObjectId) -> bool:
        return self._get("known", bytes(oid)) is not None

    def known_many(self, oids: Iterable[ObjectId]) -> set[ObjectId]:
        db = self._dbs["known"]
        with self._read() as txn:
            return {oid for oid in oids if txn.get(bytes(oid), db=db) is not None}

    def get_dirtree(self, path: str) -> ObjectId | None:
        raw = self._get("dirtree", _path_key(path))
        if raw is None:
            return None
        _path, tree_id = _split_path(raw)
        return ObjectId(tree_id) if len(tree_id) == ID_SIZE else None

    def iter_dirtrees(self) -> Iterator[tuple[str, ObjectId]]:
        for _k, v in self._scan("dirtree", b"", lambda k: False):
            path, tree_id = _split_path(v)
            yield path, ObjectId(tree_id)

    def get_meta(self, key: str) -> bytes | None:
        return self._get("meta", key.encode())

    def iter_events(self, after: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        for k, v in self._scan("events", struct.pack(">Q", after + 1), lambda k: False):
            yield struct.unpack(">Q", k)[0], json.loads(v)

    def iter_conflicts(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for _k, v in self._scan("conflicts", b"", lambda k: False):
            path, record = _split_path(v)
            yield path, json.loads(record)

    # -- writes --------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[IndexWriter]:
        """One write transaction: committed if the block succeeds, aborted otherwise."""
        with self._write_lock:
            writer = IndexWriter(self._env.begin(write=True), self._dbs, self._grow_and_replay)
            try:
                yield writer
            except BaseException:
                writer._txn.abort()
                raise
            while True:
                try:
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
