"""The folder's key hierarchy below the master key, and keyed object ids.

A folder has one random 32-byte master key (held in passphrase-wrapped key slots, see
:mod:`chunksync.crypto.keyslots`). Everything else is derived from it with HKDF-SHA256
and a purpose label, so one secret serves every device and no subkey reveals another:

* ``chunk_id_key``   keyed BLAKE3 for chunk ids (dedup inside the folder only);
* ``meta_id_key``    keyed BLAKE3 for manifest, tree and commit ids;
* ``chunker_seed``   64-bit seed of the FastCDC gear table, so cut points do not leak
  a known file's chunk sizes to the server;
* per key generation ``g``: ``content_key(g)`` for chunks and ``metadata_key(g)`` for
  every other object (rotation starts a new generation; old blobs stay readable).
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass

import blake3
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..objects import ObjectId, ObjectKind

__all__ = ["MASTER_KEY_SIZE", "FolderKeys"]

MASTER_KEY_SIZE = 32


def _hkdf(master: bytes, label: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=f"chunksync/v1/{label}".encode()
    ).derive(master)


@dataclass(frozen=True, eq=False)
class FolderKeys:
    """All keys of one folder, derived from its master key. Never logged, never sent."""

    master: bytes
    generation: int = 1

    def __post_init__(self) -> None:
        if len(self.master) != MASTER_KEY_SIZE:
            raise ValueError("master key must be 32 bytes")
        if self.generation < 1:
            raise ValueError("key generation starts at 1")

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return f"FolderKeys(generation={self.generation})"

    @functools.cached_property
    def chunk_id_key(self) -> bytes:
        return _hkdf(self.master, "chunk-id")

    @functools.cached_property
    def meta_id_key(self) -> bytes:
        return _hkdf(self.master, "meta-id")

    @functools.cached_property
    def chunker_seed(self) -> int:
        return int.from_bytes(_hkdf(self.master, "chunker-seed", 8), "big") or 1

    @functools.lru_cache(maxsize=16)  # noqa: B019 - a handful of generations per folder
    def content_key(self, generation: int) -> bytes:
        return _hkdf(self.master, f"content/{generation}")

    @functools.lru_cache(maxsize=16)  # noqa: B019
    def metadata_key(self, generation: int) -> bytes:
        return _hkdf(self.master, f"metadata/{generation}")

    def aead_key(self, kind: ObjectKind, generation: int) -> bytes:
        """The AEAD key for an object kind: content key for chunks, metadata key otherwise."""
        if kind == ObjectKind.CHUNK:
            return self.content_key(generation)
        return self.metadata_key(generation)

    def chunk_id(self, data: bytes | memoryview) -> ObjectId:
        """Keyed BLAKE3 of a chunk's plaintext (multithreaded for large buffers)."""
        return ObjectId(blake3.blake3(data, key=self.chunk_id_key).digest())

    def meta_id(self, data: bytes) -> ObjectId:
        """Keyed BLAKE3 of a manifest, tree or commit encoding."""
        return ObjectId(blake3.blake3(data, key=self.meta_id_key).digest())

    def object_id(self, kind: ObjectKind, data: bytes | memoryview) -> ObjectId:
        return self.chunk_id(data) if kind == ObjectKind.CHUNK else self.meta_id(bytes(data))

    def verify_id(self, kind: ObjectKind, data: bytes | memoryview, expected: bytes) -> bool:
        """Constant-time comparison of a recomputed id with the one it was stored under."""
        return hmac.compare_digest(self.object_id(kind, data), expected)
