"""MemoryObjectStore: the object store contract held in a dict, for tests and tools.

First-class, not a mock: it passes the same conformance suite as the disk backend
(``tests/contract/test_object_store.py``), so code tested against it behaves the same
against :class:`chunksync_server.storage.packs.PackObjectStore`. "Durable" here means "visible
to every later call until the store is closed"; nothing survives the process.

It records each blob's digest at put time like the disk backend and heals the same
way: a blob altered behind the store's back (tests do that through :meth:`corrupt`)
is never served — the read that finds it quarantines it, so it reads as missing, is
logged once and reported to ``on_damage`` — and a re-upload of its id replaces it.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

from chunksync.errors import ObjectNotFound
from chunksync.wire import blob_digest

from .base import Damage, StorageError, StoreStats, check_namespace, check_oid

__all__ = ["MemoryObjectStore"]

log = logging.getLogger("chunksync_server.storage")
_MISMATCH = "digest mismatch"

#: one stored object: the blob and the digest recorded when it was put
_Entry = tuple[bytes, bytes]


class MemoryObjectStore:
    """A thread-safe, dict-based :class:`chunksync_server.storage.base.ObjectStore`."""

    def __init__(self, *, on_damage: Callable[[Damage], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._spaces: dict[str, dict[bytes, _Entry]] = {}
        self._quarantine: dict[tuple[str, bytes], str] = {}  # (ns, oid) -> reason
        self._closed = False
        #: called once with each damaged object quarantined
        self.on_damage = on_damage

    def __repr__(self) -> str:
        return f"MemoryObjectStore(namespaces={len(self._spaces)})"

    def _live(self) -> None:
        if self._closed:
            raise StorageError("object store is closed")

    def _space(self, ns: str) -> dict[bytes, _Entry]:
        """The namespace's dict (created on demand); call with the lock held."""
        self._live()
        return self._spaces.setdefault(check_namespace(ns), {})

    def put_many(self, ns: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        staged = {check_oid(oid): bytes(blob) for oid, blob in items}
        digests = {oid: blob_digest(blob) for oid, blob in staged.items()}
        new = 0
        found: list[Damage] = []
        with self._lock:
            space = self._space(ns)
            for oid, blob in staged.items():
                entry = space.get(oid)
                if entry is not None:
                    damage = self._judge(ns, oid, entry)
                    if damage is None:
                        continue  # put-if-absent: an intact copy stays as it is
                    found.append(damage)
                space[oid] = (blob, digests[oid])
                self._quarantine.pop((ns, oid), None)  # stored again: healed
                new += 1
        self._report(found, "replaced by the re-upload")
        return new

    def get(self, ns: str, oid: bytes) -> bytes:
        check_oid(oid)
        blob = self.get_many(ns, [oid]).get(oid)
        if blob is None:  # absent, or damaged (and now quarantined): never served
            raise ObjectNotFound(f"object {oid.hex()} not found in namespace {ns}")
        return blob

    def get_many(self, ns: str, oids: Sequence[bytes]) -> dict[bytes, bytes]:
        wanted = [check_oid(oid) for oid in oids]
        out: dict[bytes, bytes] = {}
        found: list[Damage] = []
        with self._lock:
            space = self._space(ns)
            for oid in wanted:
                entry = space.get(oid)
                if entry is None:
                    continue
                damage = self._judge(ns, oid, entry)
                if damage is None:
                    out[oid] = entry[0]
                else:
                    found.append(self._quarantined(space, damage))
        self._report(found, "quarantined: it reads as missing until a client uploads it again")
        return out

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

    def check(self, ns: str | None = None, *, repair: bool = False) -> builtins.list[str]:
        """Like the pack store's: damage found, then objects still waiting in quarantine."""
        found: list[Damage] = []
        with self._lock:
            self._live()
            names = [check_namespace(ns)] if ns is not None else sorted(self._spaces)
            for name in names:
                space = self._space(name)
                for oid, entry in sorted(space.items()):
                    damage = self._judge(name, oid, entry)
                    if damage is not None:
                        found.append(self._quarantined(space, damage) if repair else damage)
            pending = sorted(
                (space, oid, reason)
                for (space, oid), reason in self._quarantine.items()
                if ns is None or space == ns
            )
        if repair:
            self._report(found, "quarantined by check: it reads as missing until re-uploaded")
        note = "; quarantined until a client uploads it again" if repair else ""
        lines = [f"{d.name}: {d.reason}{note}" for d in found]
        held = {d.name for d in found}
        return lines + [
            f"{space}/{oid.hex()}: quarantined ({reason}); waiting for a client to upload it again"
            for space, oid, reason in pending
            if f"{space}/{oid.hex()}" not in held
        ]

    def corrupt(self, ns: str, oid: bytes, blob: bytes) -> None:
        """Replace a stored blob without updating its digest (a test hook for damage)."""
        with self._lock:
            space = self._space(ns)
            if oid not in space:
                raise ObjectNotFound(f"object {oid.hex()} not found in namespace {ns}")
            space[oid] = (blob, space[oid][1])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._spaces.clear()

    # --- damage (call with the lock held, report after releasing it) -----------------

    @staticmethod
    def _judge(ns: str, oid: bytes, entry: _Entry) -> Damage | None:
        blob, digest = entry
        if blob_digest(blob) == digest:
            return None
        return Damage(ns, oid, 0, 0, len(blob), digest, _MISMATCH)

    def _quarantined(self, space: dict[bytes, _Entry], damage: Damage) -> Damage:
        del space[damage.oid]
        self._quarantine[(damage.ns, damage.oid)] = damage.reason
        return damage

    def _report(self, found: builtins.list[Damage], action: str) -> None:
        """Log each damaged object once and hand it to ``on_damage`` (outside the lock)."""
        for damage in found:
            log.warning("object %s is damaged (%s); %s", damage.name, damage.reason, action)
            if self.on_damage is not None:
                self.on_damage(damage)
