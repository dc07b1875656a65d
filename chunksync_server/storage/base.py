"""The chunk server's object store interface: opaque blobs named by 32-byte ids.

The server never sees plaintext. An object store keeps ciphertext blobs, each named by
a 32-byte id, in namespaces (a folder's internal id such as ``"f1"``); namespaces are
fully isolated from each other. Every implementation of :class:`ObjectStore` guarantees:

* **put-if-absent**: storing an id that is already present changes nothing, so
  re-uploads are idempotent and cheap; ``put_many`` returns how many objects were new;
* **durable batches**: when ``put_many`` returns, every object of the batch survives a
  crash or power loss, paid for with ONE durability barrier for the whole batch;
* **atomic objects**: a crash never exposes a partial object; an object is either
  absent or complete;
* **verifiable at rest**: the store records the unkeyed BLAKE3 digest of every blob
  (:func:`chunksync.wire.blob_digest`) and ``check`` re-verifies each object against it;
* **damage is never served**: a blob that no longer matches its recorded digest (or
  whose bytes are gone) is quarantined when found: it reads as missing, ``has_many``
  stops listing it, a re-upload of its id is stored as new, and ``on_damage`` (a
  callable attribute, None by default) is called once with its :class:`Damage`;
* **thread safety**: every method may be called from several threads at once (the
  aiohttp app calls the store through ``asyncio.to_thread``).

The store trusts its caller for upload integrity: the app verifies the client's digest
before calling ``put_many``. Missing objects raise :class:`chunksync.errors.ObjectNotFound`;
storage failures raise :class:`StorageError`; malformed namespaces or ids raise
:class:`chunksync.errors.UserError`. All messages are one line.
"""

from __future__ import annotations

import builtins
import errno
import functools
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from chunksync.errors import ChunksyncError, UserError

__all__ = [
    "NAMESPACE",
    "OID_SIZE",
    "Damage",
    "ObjectStore",
    "StorageError",
    "StorageFull",
    "StoreStats",
    "check_namespace",
    "check_oid",
    "converting",
    "storage_error",
]

#: a namespace is a folder's internal id on the server
NAMESPACE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
#: object ids are 32 raw bytes (a keyed BLAKE3 hash computed by the client)
OID_SIZE = 32


class StorageError(ChunksyncError):
    """The object store failed to read or write (I/O error, locked or closed store)."""


class StorageFull(StorageError):
    """The disk (or the server's filesystem quota) has no room for the write."""


#: errno values meaning "no room": the disk is full or the filesystem quota is spent
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13


def storage_error(exc: BaseException, what: str) -> StorageError:
    """A one-line StorageError for an OS or SQLite failure, StorageFull when out of room.

    Why classify here: the HTTP layer answers "full" (507, retry much later) differently
    from other failures, and only the place that caught the OSError still knows errno.
    """
    if isinstance(exc, StorageError):
        return exc
    full = (isinstance(exc, OSError) and exc.errno in FULL_ERRNOS) or (
        isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL
    )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    cls = StorageFull if full else StorageError
    return cls(f"{what}: {reason}".replace("\n", " "))


_F = TypeVar("_F", bound=Callable[..., Any])


def converting(method: _F) -> _F:
    """Turn SQLite and OS errors escaping a store method into a one-line StorageError."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(exc, "object store failed") from exc

    return cast(_F, wrapper)


@dataclass(frozen=True, slots=True)
class Damage:
    """One stored object that is unusable, and why (one line).

    ``pack`` and ``offset`` say where the pack store kept it (0 in the memory store);
    ``digest`` is the blob digest recorded when it was stored.
    """

    ns: str
    oid: bytes
    pack: int
    offset: int
    length: int
    digest: bytes
    reason: str

    @property
    def name(self) -> str:
        return f"{self.ns}/{self.oid.hex()}"


@dataclass(frozen=True, slots=True)
class StoreStats:
    """How many objects a store (or one namespace of it) holds, and their total size."""

    objects: int
    bytes: int

    def __post_init__(self) -> None:
        if self.objects < 0 or self.bytes < 0:
            raise ValueError("store stats cannot be negative")


def check_namespace(ns: str) -> str:
    """Return ``ns`` if it is a valid namespace, else raise UserError."""
    if not isinstance(ns, str) or not NAMESPACE.match(ns):
        raise UserError(f"invalid object namespace {ns!r}: expected [A-Za-z0-9_-]{{1,64}}")
    return ns


def check_oid(oid: bytes) -> bytes:
    """Return ``oid`` if it is a 32-byte object id, else raise UserError."""
    if not isinstance(oid, bytes) or len(oid) != OID_SIZE:
        raise UserError(f"invalid object id: expected {OID_SIZE} raw bytes")
    return oid


@runtime_checkable
class ObjectStore(Protocol):
    """Synchronous, thread-safe, put-if-absent storage of opaque blobs (see module doc)."""

    def put_many(self, ns: str, items: Sequence[tuple[bytes, bytes]]) -> int:
        """Store the (id, blob) pairs not yet present; durable on return; count new ones."""
        ...

    def get(self, ns: str, oid: bytes) -> bytes:
        """The blob stored under ``oid``; raises ObjectNotFound when absent."""
        ...

    def get_many(self, ns: str, oids: Sequence[bytes]) -> dict[bytes, bytes]:
        """The blobs of those ``oids`` that are present (absent ids are left out)."""
        ...

    def has_many(self, ns: str, oids: Iterable[bytes]) -> set[bytes]:
        """The subset of ``oids`` that is present (durably stored)."""
        ...

    def list(self, ns: str) -> Iterator[bytes]:
        """Every id present in ``ns``, each once, in no promised order."""
        ...

    def delete_many(self, ns: str, oids: Iterable[bytes]) -> int:
        """Remove objects (admin/retention path only); returns how many were present."""
        ...

    def stats(self, ns: str | None = None) -> StoreStats:
        """Object count and blob bytes of one namespace, or of the whole store."""
        ...

    def check(self, ns: str | None = None, *, repair: bool = False) -> builtins.list[str]:
        """Re-verify objects at rest; one line per problem found, [] when clean.

        With ``repair`` the damaged objects are quarantined (they then read as missing);
        quarantined objects not uploaded again since are reported until they are.
        """
        ...

    def close(self) -> None:
        """Release files and connections; idempotent."""
        ...
