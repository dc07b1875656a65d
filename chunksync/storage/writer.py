"""The write side of the index: the operations of one LMDB write transaction.

Every operation is logged, so that when a transaction fills the map the index can
abort it, grow the map and replay the log into a new one, invisibly to the caller. An
LMDB error that means damage (:data:`~.damage.DAMAGE`) is handed to the index, which
marks itself damaged and raises :class:`~chunksync.errors.IndexDamaged`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import lmdb

from ..objects import ObjectId, ObjectKind
from .damage import DAMAGE
from .records import FileState, dump_json, path_key, with_path

__all__ = ["IndexWriter"]


class IndexWriter:
    """Operations of one write transaction. Obtained from :meth:`Index.write` only."""

    __slots__ = ("_damaged", "_dbs", "_grow", "_log", "_next_seq", "_txn")

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: dict[str, Any],
        grow: Callable[[IndexWriter], lmdb.Transaction],
        damaged: Callable[[str, BaseException], NoReturn],
    ) -> None:
        self._txn = txn
        self._dbs = dbs
        self._grow = grow
        self._damaged = damaged
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
        except DAMAGE as exc:
            self._damaged(f"writing {args[0]}", exc)

    def put_state(self, state: FileState) -> None:
        self._do("put", "stat", path_key(state.path), with_path(state.path, state.encode()))

    def delete_state(self, path: str) -> None:
        self._do("delete", "stat", path_key(path))

    def put_object(self, oid: ObjectId, kind: ObjectKind, data: bytes) -> None:
        self._do("put", "objects", bytes(oid), bytes([int(kind)]) + data)

    def add_known(self, oids: Iterable[ObjectId]) -> None:
        for oid in oids:
            self._do("put", "known", bytes(oid), b"")

    def forget_known(self, keys: Iterable[bytes]) -> None:
        """Drop ids from the "known on the server" cache (listed before the write)."""
        for key in keys:
            self._do("delete", "known", bytes(key))

    def put_dirtree(self, path: str, tree_id: ObjectId) -> None:
        self._do("put", "dirtree", path_key(path), with_path(path, bytes(tree_id)))

    def delete_dirtree(self, path: str) -> None:
        self._do("delete", "dirtree", path_key(path))

    def set_meta(self, key: str, value: bytes) -> None:
        self._do("put", "meta", key.encode(), bytes(value))

    def delete_meta(self, key: str) -> None:
        self._do("delete", "meta", key.encode())

    def append_event(self, event: dict[str, Any]) -> int:
        """Append to the event log; returns the event's sequence number (from 1)."""
        if self._next_seq is None:
            try:
                with self._txn.cursor(db=self._dbs["events"]) as cur:
                    self._next_seq = struct.unpack(">Q", cur.key())[0] + 1 if cur.last() else 1
            except DAMAGE as exc:
                self._damaged("reading events", exc)
        seq = self._next_seq
        self._next_seq += 1
        self._do("put", "events", struct.pack(">Q", seq), dump_json(event))
        return seq

    def put_conflict(self, path: str, record: dict[str, Any]) -> None:
        self._do("put", "conflicts", path_key(path), with_path(path, dump_json(record)))

    def delete_conflict(self, path: str) -> None:
        self._do("delete", "conflicts", path_key(path))

    def _put(self, db: str, key: bytes, value: bytes, txn: lmdb.Transaction | None = None) -> None:
        (txn or self._txn).put(key, value, db=self._dbs[db])

    def _delete(self, db: str, key: bytes, txn: lmdb.Transaction | None = None) -> None:
        (txn or self._txn).delete(key, db=self._dbs[db])

    def _replay(self, txn: lmdb.Transaction) -> None:
        for op, args in self._log:
            getattr(self, "_" + op)(*args, txn=txn)
