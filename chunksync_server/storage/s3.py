"""S3ObjectStore: blobs as S3 objects, their index in the metadata database.

Layout: each blob is one object ``PREFIX/NS/OIDHEX`` in the bucket; the index (which
ids a namespace holds, each blob's length and BLAKE3 digest) is the ``s3_objects``
table of the server's metadata database (SQLite or PostgreSQL), and quarantined ids
are rows of ``s3_quarantine``. Why the index lives in the database and not in the
bucket: ``has_many``, ``stats`` and ``list`` are answered by one query instead of a
request per object or a bucket listing, and every server process sees the same
index at once. The server keeps no local state for this store: any number of
processes can serve the same bucket.

Why it is safe: ``put_many`` writes the new blobs to the bucket first and only when
every PUT has returned (S3 PUTs are durable and atomic: a reader sees the whole
object or none) inserts their index rows in one statement. Only indexed objects are
visible, so a crash between the two leaves invisible garbage, never a visible id
without its blob. Put-if-absent holds across processes: the rows are inserted with
``INSERT OR IGNORE`` and only the inserting process counts an object as new; an id
already indexed is not overwritten (its stored copy is read back and checked, and
replaced only if it is damaged). Every read re-checks the digest; a mismatch or a
blob gone from the bucket is quarantined (index row removed, quarantine row added,
``on_damage`` called once), as in the other backends.

Several named stores (data residency: one bucket per region) share the two tables;
rows carry the store's name (``s3://BUCKET/PREFIX``).
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from chunksync.errors import ObjectNotFound
from chunksync.wire import blob_digest

from .base import Damage, StorageError, StoreStats, check_namespace, check_oid, converting
from .s3client import Bucket, parse_s3_url

__all__ = ["S3ObjectStore"]

log = logging.getLogger("chunksync_server.storage")
_MISMATCH = "digest mismatch"
_GONE = "blob missing from the bucket"
#: ids per ``IN (…)`` query (SQLite's default variable limit is far above)
_CHUNK = 400


class S3ObjectStore:
    """An :class:`~chunksync_server.storage.base.ObjectStore` on S3 (see module doc).

    ``meta`` is the metadata database location (a SQLite path or a PostgreSQL URL);
    the store opens its own connection to it.
    """

    #: usage comes from the shared index: quotas need no per-process cache
    shared = True

    def __init__(
        self,
        url: str,
        meta: Any,
        *,
        on_damage: Callable[[Damage], None] | None = None,
    ) -> None:
        from .. import db

        self.location = parse_s3_url(url)
        self.name = self.location.name
        self.on_damage = on_damage
        self._lock = threading.Lock()
        self._closed = False
        self._conn = db.connect(meta)
        try:
            self._bucket = Bucket(self.location)
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.name!r})"

    # --- index (one connection, one statement at a time) -----------------------------

    def _sql(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._closed:
                raise StorageError("object store is closed")
            return self._conn.execute(sql, params).fetchall()

    def _count(self, sql: str, params: Sequence[Any]) -> int:
        with self._lock:
            if self._closed:
                raise StorageError("object store is closed")
            return max(self._conn.execute(sql, params).rowcount, 0)

    def _indexed(self, ns: str, oids: Sequence[bytes]) -> dict[bytes, tuple[int, bytes]]:
        """(length, digest) of those ``oids`` the index lists."""
        found: dict[bytes, tuple[int, bytes]] = {}
        for start in range(0, len(oids), _CHUNK):
            part = list(oids[start : start + _CHUNK])
            marks = ", ".join("?" * len(part))
            rows = self._sql(
                "SELECT oid, length, digest FROM s3_objects "  # nosec B608  # only ? marks
                f"WHERE store = ? AND ns = ? AND oid IN ({marks})",
                (self.name, ns, *part),
            )
            found.update({bytes(oid): (length, bytes(digest)) for oid, length, digest in rows})
        return found

    # --- the contract -----------------------------------------------------------------

    @converting
    def put_many(self, ns: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        check_namespace(ns)
        staged = {check_oid(oid): bytes(blob) for oid, blob in items}
        if self._closed:
            raise StorageError("object store is closed")
        if not staged:
            return 0
        present = self._indexed(ns, list(staged))
        # an indexed copy stays, unless reading it back shows it damaged or gone
        intact = set(self._verified(ns, present, report="replaced by the re-upload"))
        todo = {oid: blob for oid, blob in staged.items() if oid not in intact}
        if not todo:
            return 0
        self._bucket.put_many([(self._bucket.key(ns, oid), blob) for oid, blob in todo.items()])
        rows = [(self.name, ns, oid, len(blob), blob_digest(blob)) for oid, blob in todo.items()]
        new = 0
        for start in range(0, len(rows), _CHUNK):
            part = rows[start : start + _CHUNK]
            marks = ", ".join(["(?, ?, ?, ?, ?)"] * len(part))
            flat = [value for row in part for value in row]
            new += self._count(
                "INSERT OR IGNORE INTO s3_objects (store, ns, oid, length, digest) "  # nosec B608
                f"VALUES {marks}",
                flat,
            )
        for start in range(0, len(todo), _CHUNK):
            ids = list(todo)[start : start + _CHUNK]
            marks = ", ".join("?" * len(ids))
            self._count(
                "DELETE FROM s3_quarantine "  # nosec B608  # only ? marks
                f"WHERE store = ? AND ns = ? AND oid IN ({marks})",
                (self.name, ns, *ids),
            )
        return new

    def get(self, ns: str, oid: bytes) -> bytes:
        check_oid(oid)
        blob = self.get_many(ns, [oid]).get(oid)
        if blob is None:
            raise ObjectNotFound(f"object {oid.hex()} not found in namespace {ns}")
        return blob

    @converting
    def get_many(self, ns: str, oids: Sequence[bytes]) -> dict[bytes, bytes]:
        check_namespace(ns)
        wanted = [check_oid(oid) for oid in oids]
        indexed = self._indexed(ns, wanted)
        report = "quarantined: it reads as missing until a client uploads it again"
        return self._verified(ns, indexed, report=report)

    @converting
    def has_many(self, ns: str, oids: Iterable[bytes]) -> set[bytes]:
        check_namespace(ns)
        return set(self._indexed(ns, [check_oid(oid) for oid in oids]))

    @converting
    def list(self, ns: str) -> Iterator[bytes]:
        check_namespace(ns)
        rows = self._sql("SELECT oid FROM s3_objects WHERE store = ? AND ns = ?", (self.name, ns))
        return iter([bytes(oid) for (oid,) in rows])

    @converting
    def delete_many(self, ns: str, oids: Iterable[bytes]) -> int:
        check_namespace(ns)
        wanted = sorted({check_oid(oid) for oid in oids})
        gone = 0
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start : start + _CHUNK]
            marks = ", ".join("?" * len(part))
            gone += self._count(
                "DELETE FROM s3_objects "  # nosec B608  # only ? marks
                f"WHERE store = ? AND ns = ? AND oid IN ({marks})",
                (self.name, ns, *part),
            )
        # index first: a failure below leaves unlisted garbage, never a listed hole
        self._bucket.delete_many([self._bucket.key(ns, oid) for oid in wanted])
        return gone

    @converting
    def stats(self, ns: str | None = None) -> StoreStats:
        where, params = ("store = ?", [self.name])
        if ns is not None:
            where, params = "store = ? AND ns = ?", [self.name, check_namespace(ns)]
        (objects, size), *_ = self._sql(
            f"SELECT count(*), coalesce(sum(length), 0) FROM s3_objects WHERE {where}",  # nosec B608
            params,
        )
        return StoreStats(objects=int(objects), bytes=int(size))

    @converting
    def check(self, ns: str | None = None, *, repair: bool = False) -> builtins.list[str]:
        """Read every indexed blob back and verify it; then list ids still quarantined."""
        where, params = ("store = ?", [self.name])
        if ns is not None:
            where, params = "store = ? AND ns = ?", [self.name, check_namespace(ns)]
        rows = self._sql(
            f"SELECT ns, oid, length, digest FROM s3_objects WHERE {where} ORDER BY ns, oid",  # nosec B608
            params,
        )
        found: builtins.list[Damage] = []
        for start in range(0, len(rows), _CHUNK):
            part = rows[start : start + _CHUNK]
            bodies = self._bucket.get_many([self._bucket.key(r[0], bytes(r[1])) for r in part])
            for (space, oid, length, digest), body in zip(part, bodies.values(), strict=True):
                damage = self._judge(space, bytes(oid), int(length), bytes(digest), body)
                if damage is not None:
                    found.append(damage)
        if repair:
            for damage in found:
                self._quarantine(damage)
            self._report(found, "quarantined by check: it reads as missing until re-uploaded")
        pending = self._sql(
            f"SELECT ns, oid, reason FROM s3_quarantine WHERE {where} ORDER BY ns, oid",  # nosec B608
            params,
        )
        note = "; quarantined until a client uploads it again" if repair else ""
        lines = [f"{d.name}: {d.reason}{note}" for d in found]
        held = {d.name for d in found}
        return lines + [
            f"{space}/{bytes(oid).hex()}: quarantined ({reason}); "
            "waiting for a client to upload it again"
            for space, oid, reason in pending
            if f"{space}/{bytes(oid).hex()}" not in held
        ]

    def corrupt(self, ns: str, oid: bytes, blob: bytes) -> None:
        """Overwrite a stored blob in the bucket behind the index (a test hook for damage)."""
        self._bucket.put_many([(self._bucket.key(ns, oid), blob)])

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._bucket.close()
        self._conn.close()

    # --- damage ----------------------------------------------------------------------

    def _verified(
        self, ns: str, indexed: dict[bytes, tuple[int, bytes]], *, report: str
    ) -> dict[bytes, bytes]:
        """The intact blobs of ``indexed``; damaged ones are quarantined and reported."""
        if not indexed:
            return {}
        oids = builtins.list(indexed)
        bodies = self._bucket.get_many([self._bucket.key(ns, oid) for oid in oids])
        out: dict[bytes, bytes] = {}
        found: builtins.list[Damage] = []
        for oid, body in zip(oids, bodies.values(), strict=True):
            length, digest = indexed[oid]
            damage = self._judge(ns, oid, length, digest, body)
            if damage is None:
                assert body is not None  # nosec B101  # judged intact
                out[oid] = body
            elif self._quarantine(damage):
                found.append(damage)
        self._report(found, report)
        return out

    @staticmethod
    def _judge(
        ns: str, oid: bytes, length: int, digest: bytes, body: bytes | None
    ) -> Damage | None:
        if body is None:
            return Damage(ns, oid, 0, 0, length, digest, _GONE)
        if blob_digest(body) != digest:
            return Damage(ns, oid, 0, 0, length, digest, _MISMATCH)
        return None

    def _quarantine(self, damage: Damage) -> bool:
        """Unlist a damaged id (only the copy judged: the digest must still match)."""
        removed = self._count(
            "DELETE FROM s3_objects WHERE store = ? AND ns = ? AND oid = ? AND digest = ?",
            (self.name, damage.ns, damage.oid, damage.digest),
        )
        if removed:
            self._count(
                "INSERT OR IGNORE INTO s3_quarantine (store, ns, oid, reason) VALUES (?, ?, ?, ?)",
                (self.name, damage.ns, damage.oid, damage.reason),
            )
        return removed > 0

    def _report(self, found: builtins.list[Damage], action: str) -> None:
        for damage in found:
            log.warning("object %s is damaged (%s); %s", damage.name, damage.reason, action)
            if self.on_damage is not None:
                self.on_damage(damage)
