"""Data residency: folders pinned to named stores (e.g. one bucket per region).

The server is started with a default store and any number of named ones
(``--named-store eu=s3://chunksync-eu?…``). A folder pinned to a name (the
``folder_stores`` table, set by ``chunksync-server folder pin``) keeps every object in
that store; other folders use the default. :class:`RoutingStore` is an ObjectStore
that sends each call to the store of its namespace, so the app and its handlers need
not know. A pin names a store, not a location, so a bucket can move (new endpoint,
same name) without touching the database.

Why pins are only set on empty folders (:mod:`chunksync_server.admin_stores`): moving
a folder's existing objects between regions is a migration, not a routing change.
Servers look the pin of an unpinned namespace up on every call (one primary-key
query), so a pin made while servers run applies at once; a pin found is cached.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .base import Damage, ObjectStore, StorageError, StoreStats, check_namespace

__all__ = ["RoutingStore", "open_configured_store"]


def open_configured_store(config: Any, on_damage: Callable[[Damage], None]) -> ObjectStore:
    """The store a server config asks for: the default one, routed when named ones exist."""
    from . import open_store

    default = open_store(config.store_location, on_damage=on_damage, meta=config.db_location)
    if not config.named_stores:
        return default
    named: dict[str, ObjectStore] = {}
    try:
        for name, location in config.named_stores:
            named[name] = open_store(location, on_damage=on_damage, meta=config.db_location)
        return RoutingStore(default, named, config.db_location)
    except BaseException:
        for store in [default, *named.values()]:
            store.close()
        raise


class RoutingStore:
    """An ObjectStore over a default store and named ones, routed by folder pin."""

    def __init__(self, default: ObjectStore, named: dict[str, ObjectStore], meta: Any) -> None:
        from .. import db

        self.default = default
        self.named = dict(named)
        self.shared = all(getattr(s, "shared", False) for s in [default, *named.values()])
        self._pins: dict[str, str] = {}
        self._lock = threading.Lock()
        self._conn = db.connect(meta)

    @property
    def on_damage(self) -> Callable[[Damage], None] | None:
        return getattr(self.default, "on_damage", None)

    @on_damage.setter
    def on_damage(self, hook: Callable[[Damage], None] | None) -> None:
        for store in [self.default, *self.named.values()]:
            store.on_damage = hook  # type: ignore[attr-defined]

    def store_for(self, ns: str) -> ObjectStore:
        check_namespace(ns)
        with self._lock:
            name = self._pins.get(ns)
            if name is None:
                row = self._conn.execute(
                    "SELECT store FROM folder_stores WHERE folder_id = ?", (ns,)
                ).fetchone()
                if row is None:
                    return self.default
                name = self._pins[ns] = str(row[0])
        store = self.named.get(name)
        if store is None:
            raise StorageError(f"folder {ns} is pinned to store {name!r}, which is not configured")
        return store

    def put_many(self, ns: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        return self.store_for(ns).put_many(ns, items)

    def get(self, ns: str, oid: bytes) -> bytes:
        return self.store_for(ns).get(ns, oid)

    def get_many(self, ns: str, oids: Sequence[bytes]) -> dict[bytes, bytes]:
        return self.store_for(ns).get_many(ns, oids)

    def has_many(self, ns: str, oids: Iterable[bytes]) -> set[bytes]:
        return self.store_for(ns).has_many(ns, oids)

    def list(self, ns: str) -> Iterator[bytes]:
        return self.store_for(ns).list(ns)

    def delete_many(self, ns: str, oids: Iterable[bytes]) -> int:
        return self.store_for(ns).delete_many(ns, oids)

    def stats(self, ns: str | None = None) -> StoreStats:
        if ns is not None:
            return self.store_for(ns).stats(ns)
        every = [s.stats() for s in [self.default, *self.named.values()]]
        return StoreStats(sum(s.objects for s in every), sum(s.bytes for s in every))

    def check(self, ns: str | None = None, *, repair: bool = False) -> builtins.list[str]:
        if ns is not None:
            return self.store_for(ns).check(ns, repair=repair)
        return [
            line for s in [self.default, *self.named.values()] for line in s.check(repair=repair)
        ]

    def close(self) -> None:
        for store in [self.default, *self.named.values()]:
            store.close()
        with self._lock:
            self._conn.close()
