"""MemoryObjectStore: the object store contract held in a dict, for tests and tools.

First-class, not a mock: it passes the same conformance suite as the disk backend
(``tests/contract/test_object_store.py``), so code tested against it behaves the same
against :class:`server.storage.packs.PackObjectStore`. "Durable" here means "visible
to every later call until the store is closed"; nothing survives the process.

It records each blob's digest at put time like the disk backend, so ``check`` finds
blobs altered behind the store's back (tests do that through :meth:`corrupt`).
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Iterator, Sequence

from chunksync.errors import ObjectNotFound
from chunksync.wire import blob_digest

from .base import StorageError, StoreStats, check_namespace, check_oid

__all__ = ["MemoryObjectStore"]


class MemoryObjectStore:
    """A thread-safe, dict-based :class:`server.storage.base.ObjectStore`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # ns -> oid -> (blob, digest at put time)
        self._spaces: dict[str, dict[bytes, tuple[bytes, bytes]]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryObjectStore(namespaces={len(self._spaces)})"

    def _live(self) -> None:
        if self._closed:
            raise StorageError("object store is closed")

    def _space(self, ns: str) -> dict[bytes, tuple[bytes, bytes]]:
        """The namespace's dict (created on demand); call with the lock held."""
        self._live()
        return self._spaces.setdefault(check_namespace(ns), {})

    def put_many(self, ns: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        staged = [(check_oid(oid), bytes(blob)) for oid, blob in items]
        with self._lock:
            space = self._space(ns)
            fresh = {oid: blob for oid, blob in staged if oid not in space}
        digests = {oid: blob_digest(blob) for oid, blob in fresh.items()}
        new = 0
        with self._lock:
            space = self._space(ns)
            for oid, blob in fresh.items():
                if oid not in space:
                    space[oid] = (blob, digests[oid])
                    new += 1
        return new

    def get(self, ns: str, oid: bytes) -> bytes:
        check_oid(oid)
        with self._lock:
            entry = self._space(ns).get(oid)
        if entry is None:
            raise ObjectNotFound(f"object {oid.hex()} not found in namespace {ns}")
        return entry[0]

    def get_many(self, ns: str, oids: Sequence[bytes]) -> dict[bytes, bytes]:
        wanted = [check_oid(oid) for oid in oids]
        with self._lock:
            space = self._space(ns)
            return {oid: space[oid][0] for oid in wanted if oid in space}

    def has_many(self, ns: str, oids: Iterable[bytes]) -> set[bytes]:
        wanted = [check_oid(oid) for oid in oids]
        with self._lock:
            space = self._space(ns)
            return {oid for oid in wanted if oid in space}

    def list(self, ns: str) -> Iterator[bytes]:
        with self._lock:
            snapshot = list(self._space(ns))
        return iter(snapshot)

    def delete_many(self, ns: str, oids: Iterable[bytes]) -> int:
        wanted = [check_oid(oid) for oid in oids]
        with self._lock:
            space = self._space(ns)
            return sum(1 for oid in set(wanted) if space.pop(oid, None) is not None)

    def stats(self, ns: str | None = None) -> StoreStats:
        with self._lock:
            self._live()
            spaces = [self._space(ns)] if ns is not None else list(self._spaces.values())
            entries = [entry for space in spaces for entry in space.values()]
        return StoreStats(objects=len(entries), bytes=sum(len(blob) for blob, _ in entries))

    def check(self, ns: str | None = None) -> builtins.list[str]:
        with self._lock:
            self._live()
            names = [check_namespace(ns)] if ns is not None else sorted(self._spaces)
            snapshot = [(name, dict(self._space(name))) for name in names]
        return [
            f"{name}/{oid.hex()}: digest mismatch"
            for name, space in snapshot
            for oid, (blob, digest) in sorted(space.items())
            if blob_digest(blob) != digest
        ]

    def corrupt(self, ns: str, oid: bytes, blob: bytes) -> None:
        """Replace a stored blob without updating its digest (a test hook for ``check``)."""
        with self._lock:
            space = self._space(ns)
            if oid not in space:
                raise ObjectNotFound(f"object {oid.hex()} not found in namespace {ns}")
            space[oid] = (blob, space[oid][1])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._spaces.clear()
