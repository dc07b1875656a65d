"""The chunk server's object storage: opaque ciphertext blobs named by 32-byte ids.

:class:`ObjectStore` (in :mod:`.base`) is the contract the aiohttp app codes against;
:class:`MemoryObjectStore` and :class:`PackObjectStore` implement it and pass the same
conformance suite. :func:`open_store` picks one from a configuration string.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .base import (
    Damage,
    ObjectStore,
    StorageError,
    StorageFull,
    StoreStats,
    check_namespace,
    check_oid,
    storage_error,
)
from .memory import MemoryObjectStore
from .packs import PackObjectStore

__all__ = [
    "Damage",
    "MemoryObjectStore",
    "ObjectStore",
    "PackObjectStore",
    "StorageError",
    "StorageFull",
    "StoreStats",
    "check_namespace",
    "check_oid",
    "open_store",
    "storage_error",
]

MEMORY_URL = "memory:"


def open_store(
    url_or_path: str | Path,
    *,
    read_only: bool = False,
    on_damage: Callable[[Damage], None] | None = None,
    meta: str | Path | None = None,
) -> ObjectStore:
    """``"memory:"`` gives a fresh MemoryObjectStore; ``s3://BUCKET[/PREFIX]?endpoint=…``
    an S3ObjectStore whose index lives in the metadata database ``meta`` (a SQLite
    path or a PostgreSQL URL); a data directory DIR gives a PackObjectStore at
    ``DIR/objects``.

    The disk store has one writer process at a time: a second opener only reads until
    the first has closed, then takes over. Admin commands that only read (stats, check)
    should pass ``read_only=True`` so that they never take the writer lock.
    ``on_damage`` is called once per damaged object quarantined, from the start-up
    reconcile on (see :class:`ObjectStore`).
    """
    if isinstance(url_or_path, str) and url_or_path == MEMORY_URL:
        return MemoryObjectStore(on_damage=on_damage)
    if isinstance(url_or_path, str) and url_or_path.startswith("s3://"):
        from .s3 import S3ObjectStore

        if meta is None:
            raise StorageError("an S3 store needs the metadata database for its index")
        return S3ObjectStore(url_or_path, meta, on_damage=on_damage)
    return PackObjectStore(Path(url_or_path) / "objects", read_only=read_only, on_damage=on_damage)
