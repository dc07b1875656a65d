"""Sealing objects into encrypted blobs, and opening them again.

Every object (chunk, file manifest, tree, commit) travels and rests as one blob::

    blob   = header (11 bytes) ‖ nonce (24) ‖ XAES-256-GCM(inner, aad) (len(inner) + 16)
    header = "CSB" ‖ version u8 = 1 ‖ algorithm u8 = 1 (XAES-256-GCM) ‖ kind u8
             ‖ flags u8 (bit 0: zstd) ‖ key generation u32 (big endian)
    aad    = header ‖ object id (32 bytes)
    inner  = body length u32 ‖ body ‖ zero padding up to padme(4 + len(body))
    body   = zstd(plaintext) when that saves at least ~3 %, else the plaintext itself

Guarantees:

* **Authenticated and bound.** The header and the object id are associated data, so a
  blob moved to another id, relabelled as another kind or key generation, truncated or
  altered in any byte fails to open. After decryption the keyed id is recomputed from the
  plaintext (constant-time compare), so even a blob sealed by a key holder under a wrong
  id is refused. Every failure is an :class:`~chunksync.errors.IntegrityError` naming the
  object (``short_id``) and the step that failed.
* **Deterministic, hence idempotent.** The nonce is ``BLAKE3-keyed(nonce_key, aad ‖
  unpadded inner)[:24]``, where ``nonce_key`` is derived from the AEAD key. Sealing the
  same object twice gives the same blob, so re-uploads are no-ops. This is SIV-style
  nonce derivation and it is safe: the nonce commits to the header, the id and the exact
  AEAD plaintext, so two different AEAD plaintexts under one key get the same nonce only
  through a 192-bit BLAKE3 collision. (Hashing the inner plaintext, not only the id,
  also covers two devices whose zstd versions or levels compress the same object to
  different bytes: they get different nonces instead of a GCM nonce reuse.) The only
  thing a repeated nonce reveals is that the same object was sealed twice, which the
  server already sees from the id.
* **Sizes are blurred.** Padmé padding (Nikitin et al., PETS 2019) rounds the inner
  length so that at most O(log log n) bits of it leak, with at most 12 % overhead, so
  exact chunk sizes, which fingerprint known files, are not visible to the server.
* **Bounded.** Headers are parsed strictly (unknown magic, version, algorithm, kind or
  flags are refused), blobs longer than the largest legitimate one are refused before
  decryption, and decompression is refused beyond :data:`MAX_PLAINTEXT` (no zip bombs).
* **Thread-friendly.** zstd contexts are per thread; zstd, AES-GCM and BLAKE3 all release
  the GIL, so a thread pool seals in parallel.
"""

from __future__ import annotations

import functools
import struct
import threading
from dataclasses import dataclass

import blake3
import zstandard
from cryptography.exceptions import InvalidTag

from ..errors import IntegrityError
from ..objects import ID_SIZE, ObjectId, ObjectKind, short_id
from .folder_keys import FolderKeys
from .xaes import NONCE_SIZE, TAG_SIZE, XAES256GCM

__all__ = [
    "ALG_XAES_256_GCM",
    "FLAG_ZSTD",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_PLAINTEXT",
    "BlobHeader",
    "open_blob",
    "padme",
    "parse_header",
    "seal",
    "sealed_size_bound",
]

MAGIC = b"CSB"
FORMAT_VERSION = 1
ALG_XAES_256_GCM = 1
FLAG_ZSTD = 0x01
_KNOWN_FLAGS = FLAG_ZSTD
_HEADER = struct.Struct(">3sBBBBI")
HEADER_SIZE = _HEADER.size  # 11
_LENGTH = struct.Struct(">I")
_MAX_GENERATION = 2**32 - 1
_KIND_VALUES = frozenset(k.value for k in ObjectKind)
_NONCE_KEY_CONTEXT = "chunksync v1 2025 blob nonce key"

#: The largest plaintext each kind may have; larger ones are neither sealed nor opened.
MAX_PLAINTEXT: dict[ObjectKind, int] = {
    ObjectKind.CHUNK: 16 * 1024 * 1024,
    ObjectKind.FILE: 64 * 1024 * 1024,
    ObjectKind.TREE: 64 * 1024 * 1024,
    ObjectKind.COMMIT: 1024 * 1024,
}


def padme(length: int) -> int:
    """The Padmé padded length for ``length``: leaks O(log log n) bits, adds ≤ 12 %."""
    if length < 0:
        raise ValueError("length must not be negative")
    if length < 2:
        return length
    exponent = length.bit_length() - 1  # floor(log2 L)
    size_bits = exponent.bit_length()  # floor(log2 E) + 1
    mask = (1 << (exponent - size_bits)) - 1
    return (length + mask) & ~mask


def sealed_size_bound(kind: ObjectKind) -> int:
    """The largest blob :func:`seal` can produce for ``kind`` (bodies never exceed the cap)."""
    return HEADER_SIZE + NONCE_SIZE + padme(_LENGTH.size + MAX_PLAINTEXT[kind]) + TAG_SIZE


@dataclass(frozen=True, slots=True)
class BlobHeader:
    """The clear-text header of a blob: enough to pick the key, nothing about the content."""

    kind: ObjectKind
    generation: int
    flags: int

    def encode(self) -> bytes:
        return _HEADER.pack(
            MAGIC, FORMAT_VERSION, ALG_XAES_256_GCM, self.kind, self.flags, self.generation
        )


@dataclass(frozen=True, slots=True)
class _KeyState:
    cipher: XAES256GCM
    nonce_key: bytes


@functools.lru_cache(maxsize=64)
def _key_state(aead_key: bytes) -> _KeyState:
    nonce_key = blake3.blake3(aead_key, derive_key_context=_NONCE_KEY_CONTEXT).digest()
    return _KeyState(XAES256GCM(aead_key), nonce_key)


#: zstd level for sealing: level 1 compresses the benchmark corpus only ~2 % worse than
#: level 3 and lets the whole pipeline run ~30 % faster (tools/bench_pipeline.py).
ZSTD_LEVEL = 1

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    ctx = cache.get(level)
    if ctx is None:
        ctx = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return ctx


def _decompressor() -> zstandard.ZstdDecompressor:
    ctx: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if ctx is None:
        ctx = _local.decompressor = zstandard.ZstdDecompressor()
    return ctx


def _encode_body(plaintext: bytes | memoryview, level: int) -> tuple[bytes | memoryview, int]:
    """zstd when it saves at least 1/32 (~3 %) of the size, else the raw plaintext."""
    if len(plaintext) == 0:
        return plaintext, 0
    packed = _compressor(level).compress(plaintext)
    if len(packed) <= len(plaintext) - len(plaintext) // 32 - 1:
        return packed, FLAG_ZSTD
    return plaintext, 0


def _nonce(state: _KeyState, aad: bytes, unpadded_inner: memoryview) -> bytes:
    hasher = blake3.blake3(aad, key=state.nonce_key)
    hasher.update(unpadded_inner)
    return hasher.digest(NONCE_SIZE)


def seal(
    keys: FolderKeys,
    kind: ObjectKind,
    oid: ObjectId,
    plaintext: bytes | memoryview,
    *,
    generation: int | None = None,
    level: int = ZSTD_LEVEL,
) -> bytes:
    """Encrypt one object into its blob (deterministic for a given key, id and zstd).

    ``generation`` defaults to ``keys.generation``. Raises ``ValueError`` for arguments
    no caller should pass (oversized plaintext, bad level or generation), and
    ``IntegrityError`` if ``oid`` is not the keyed id of ``plaintext``: such a blob could
    never be opened, so it is refused here rather than discovered missing later.
    """
    kind = ObjectKind(kind)
    gen = keys.generation if generation is None else generation
    if not 1 <= gen <= _MAX_GENERATION:
        raise ValueError(f"key generation must be in 1..{_MAX_GENERATION}")
    if not 1 <= level <= 22:
        raise ValueError("zstd level must be in 1..22")
    if len(oid) != ID_SIZE:
        raise ValueError(f"object id must be {ID_SIZE} bytes")
    if len(plaintext) > MAX_PLAINTEXT[kind]:
        raise ValueError(
            f"{kind.name.lower()} of {len(plaintext)} bytes exceeds the "
            f"{MAX_PLAINTEXT[kind]}-byte limit"
        )
    if not keys.verify_id(kind, plaintext, oid):
        raise IntegrityError(f"object {short_id(oid)}: plaintext does not match its id")

    body, flags = _encode_body(plaintext, level)
    header = BlobHeader(kind, gen, flags).encode()
    aad = header + bytes(oid)
    used = _LENGTH.size + len(body)
    inner = b"".join((_LENGTH.pack(len(body)), body, bytes(padme(used) - used)))
    state = _key_state(keys.aead_key(kind, gen))
    nonce = _nonce(state, aad, memoryview(inner)[:used])
    return b"".join((header, nonce, state.cipher.encrypt(nonce, inner, aad)))


def parse_header(blob: bytes | memoryview, *, oid: bytes | str = "") -> BlobHeader:
    """Strictly parse a blob's header; ``IntegrityError`` for anything unknown or short."""
    where = f"object {short_id(oid)}" if oid else "blob"
    if len(blob) < HEADER_SIZE + NONCE_SIZE + TAG_SIZE + _LENGTH.size:
        raise IntegrityError(f"{where}: blob is truncated ({len(blob)} bytes)")
    magic, version, alg, kind, flags, gen = _HEADER.unpack_from(blob, 0)
    if magic != MAGIC:
        raise IntegrityError(f"{where}: not a chunksync blob (bad magic)")
    if version != FORMAT_VERSION:
        raise IntegrityError(f"{where}: unsupported blob format version {version}")
    if alg != ALG_XAES_256_GCM:
        raise IntegrityError(f"{where}: unknown encryption algorithm {alg}")
    if kind not in _KIND_VALUES:
        raise IntegrityError(f"{where}: unknown object kind {kind}")
    if flags & ~_KNOWN_FLAGS:
        raise IntegrityError(f"{where}: unknown blob flags {flags:#04x}")
    if gen < 1:
        raise IntegrityError(f"{where}: invalid key generation 0")
    return BlobHeader(ObjectKind(kind), gen, flags)


def _decode_body(body: memoryview, flags: int, cap: int, where: str) -> bytes:
    if not flags & FLAG_ZSTD:
        return bytes(body)
    try:
        size = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{where}: malformed compressed payload") from exc
    if size < 0 or size > cap:  # -1: unknown size; we always write it
        raise IntegrityError(f"{where}: compressed payload too large or of unknown size")
    try:
        plaintext = _decompressor().decompress(body, max_output_size=cap)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{where}: decompression failed") from exc
    if len(plaintext) != size:
        raise IntegrityError(f"{where}: decompressed size does not match the frame")
    return plaintext


def open_blob(keys: FolderKeys, kind: ObjectKind, oid: ObjectId, blob: bytes | memoryview) -> bytes:
    """Decrypt, decompress and verify one blob; its plaintext, or ``IntegrityError``."""
    kind = ObjectKind(kind)
    where = f"object {short_id(oid)}"
    if len(oid) != ID_SIZE:
        raise IntegrityError(f"{where}: object id must be {ID_SIZE} bytes")
    view = memoryview(blob)
    header = parse_header(view, oid=oid)
    if header.kind != kind:
        raise IntegrityError(
            f"{where}: blob holds a {header.kind.name.lower()}, expected a {kind.name.lower()}"
        )
    cap = MAX_PLAINTEXT[kind]
    if len(view) > sealed_size_bound(kind):
        raise IntegrityError(f"{where}: blob of {len(view)} bytes exceeds the size limit")
    aad = bytes(view[:HEADER_SIZE]) + bytes(oid)
    nonce = bytes(view[HEADER_SIZE : HEADER_SIZE + NONCE_SIZE])
    state = _key_state(keys.aead_key(kind, header.generation))
    try:
        inner = state.cipher.decrypt(nonce, view[HEADER_SIZE + NONCE_SIZE :], aad)
    except InvalidTag:
        raise IntegrityError(
            f"{where}: authentication failed (tampered, truncated, or wrong key)"
        ) from None
    (body_len,) = _LENGTH.unpack_from(inner, 0)
    used = _LENGTH.size + body_len
    if body_len > cap or padme(used) != len(inner) or inner[used:].strip(b"\0"):
        raise IntegrityError(f"{where}: malformed padding or length inside the blob")
    plaintext = _decode_body(memoryview(inner)[_LENGTH.size : used], header.flags, cap, where)
    if not keys.verify_id(kind, plaintext, oid):
        raise IntegrityError(f"{where}: content does not match its id (swapped or corrupted)")
    return plaintext
