"""Key slots: the folder master key wrapped under a passphrase, stored by the server.

A folder has one random 32-byte master key. Each key slot holds that key encrypted under
a key-encryption key (KEK) derived from a passphrase with Argon2id, so the server keeps
only opaque slot blobs and a passphrase change rewraps one slot without touching any
object. Several slots may coexist (other passphrases, recovery keys).

Slot format, version 1 (all integers big endian)::

    "CSKS" ‖ version u8 = 1 ‖ kdf u8 = 1 (Argon2id) ‖ aead u8 = 1 (XAES-256-GCM)
    ‖ memory_kib u32 ‖ iterations u32 ‖ lanes u32 ‖ salt_len u8 ‖ salt
    ‖ nonce (24) ‖ XAES-256-GCM(KEK, nonce, master key, aad = every byte before the nonce)

Guarantees:

* **No silent downgrade.** The KDF parameters and the salt are associated data of the
  wrap, so a server that edits them makes unwrapping fail; and parameters below the
  caller's floor (:data:`MIN_PARAMS` unless a test lowers it) are refused *before* the KDF
  runs, so a weakened slot is never used to test a passphrase. Parameters above
  :data:`MAX_PARAMS` are refused too, so a hostile server cannot make a client allocate
  gigabytes.
* **Passphrases are NFC-normalized** before UTF-8 encoding, so the same passphrase typed
  on macOS and Linux opens the same slot.
* A wrong passphrase and a tampered slot are indistinguishable to the AEAD and both raise
  :class:`~chunksync.errors.WrongPassphrase`; malformed or downgraded slots raise
  :class:`~chunksync.errors.IntegrityError`.

:data:`TEST_PARAMS` (64 KiB, one pass) exists only so tests of other layers stay fast:
pass ``params=TEST_PARAMS`` when wrapping and ``min_params=TEST_PARAMS`` when unwrapping.
Production code never passes ``min_params``.
"""

from __future__ import annotations

import os
import struct
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from ..errors import ConfigError, IntegrityError, UserError, WrongPassphrase
from .folder_keys import MASTER_KEY_SIZE
from .xaes import NONCE_SIZE, TAG_SIZE, XAES256GCM

__all__ = [
    "DEFAULT_PARAMS",
    "MAX_PARAMS",
    "MIN_PARAMS",
    "TEST_PARAMS",
    "KdfParams",
    "new_master_key",
    "open_any_slot",
    "rewrap",
    "slot_params",
    "unwrap_master_key",
    "wrap_master_key",
]

_MAGIC = b"CSKS"
_VERSION = 1
_KDF_ARGON2ID = 1
_AEAD_XAES = 1
_FIXED = struct.Struct(">4sBBBIIIB")
_SALT_SIZE = 16
_MAX_SALT = 64
# B105: an error message
WRONG_PASSPHRASE = "wrong passphrase: it opens none of this folder's key slots"  # nosec B105


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost parameters and salt. An empty salt means "draw a fresh one"."""

    memory_kib: int
    iterations: int
    lanes: int
    salt: bytes = b""

    def __post_init__(self) -> None:
        if not (1 <= self.lanes <= 255 and 1 <= self.iterations <= 2**32 - 1):
            raise ValueError("Argon2id needs 1..255 lanes and at least one iteration")
        if not 8 * self.lanes <= self.memory_kib <= 2**32 - 1:
            raise ValueError("Argon2id needs at least 8 KiB of memory per lane")
        if self.salt and not _SALT_SIZE <= len(self.salt) <= _MAX_SALT:
            raise ValueError(f"salt must be {_SALT_SIZE}..{_MAX_SALT} bytes")

    def at_least(self, floor: KdfParams) -> bool:
        """True when both cost factors (memory and passes) reach ``floor``'s."""
        return self.memory_kib >= floor.memory_kib and self.iterations >= floor.iterations

    def describe(self) -> str:
        return f"m={self.memory_kib} KiB, t={self.iterations}, p={self.lanes}"


#: What new slots use: 128 MiB, 4 passes, 4 lanes: ~0.3 s on the 2-core development machine.
DEFAULT_PARAMS = KdfParams(memory_kib=128 * 1024, iterations=4, lanes=4)
#: The weakest slot a client accepts (OWASP's Argon2id minimum: 19 MiB, 2 passes).
MIN_PARAMS = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)
#: The costliest slot a client accepts, so a server cannot exhaust a device's memory.
MAX_PARAMS = KdfParams(memory_kib=1024 * 1024, iterations=64, lanes=64)
#: Tests only: wrap with ``params=TEST_PARAMS``, unwrap with ``min_params=TEST_PARAMS``.
TEST_PARAMS = KdfParams(memory_kib=64, iterations=1, lanes=1)


def new_master_key() -> bytes:
    """A fresh random folder master key (32 bytes from the OS CSPRNG)."""
    return os.urandom(MASTER_KEY_SIZE)


def _encode_passphrase(passphrase: str) -> bytes:
    if not isinstance(passphrase, str):
        raise TypeError("passphrase must be a str")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _derive_kek(passphrase: str, params: KdfParams) -> bytes:
    return Argon2id(
        salt=params.salt,
        length=32,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    ).derive(_encode_passphrase(passphrase))


def _header(params: KdfParams) -> bytes:
    fixed = _FIXED.pack(
        _MAGIC,
        _VERSION,
        _KDF_ARGON2ID,
        _AEAD_XAES,
        params.memory_kib,
        params.iterations,
        params.lanes,
        len(params.salt),
    )
    return fixed + params.salt


def _parse(slot: bytes) -> tuple[KdfParams, bytes, bytes, bytes]:
    """(params, aad, nonce, wrapped key) of a slot; IntegrityError if malformed."""
    if not isinstance(slot, bytes | bytearray | memoryview):
        raise IntegrityError("key slot is malformed: not bytes")
    slot = bytes(slot)
    if len(slot) < _FIXED.size:
        raise IntegrityError("key slot is malformed: truncated")
    magic, version, kdf, aead, memory, iterations, lanes, salt_len = _FIXED.unpack_from(slot)
    if magic != _MAGIC:
        raise IntegrityError("key slot is malformed: bad magic")
    if version != _VERSION or kdf != _KDF_ARGON2ID or aead != _AEAD_XAES:
        raise IntegrityError(
            f"key slot uses an unsupported format (version {version}, kdf {kdf}, aead {aead})"
        )
    aad_end = _FIXED.size + salt_len
    if len(slot) != aad_end + NONCE_SIZE + MASTER_KEY_SIZE + TAG_SIZE:
        raise IntegrityError("key slot is malformed: wrong length")
    try:
        params = KdfParams(memory, iterations, lanes, slot[_FIXED.size : aad_end])
    except ValueError as exc:
        raise IntegrityError(f"key slot is malformed: {exc}") from None
    if not params.salt:
        raise IntegrityError("key slot is malformed: empty salt")
    nonce_end = aad_end + NONCE_SIZE
    return params, slot[:aad_end], slot[aad_end:nonce_end], slot[nonce_end:]


def slot_params(slot: bytes) -> KdfParams:
    """The KDF parameters recorded in a slot, without running the KDF."""
    return _parse(slot)[0]


def wrap_master_key(master: bytes, passphrase: str, *, params: KdfParams | None = None) -> bytes:
    """A new key slot: ``master`` encrypted under a key derived from ``passphrase``.

    ``params`` defaults to :data:`DEFAULT_PARAMS`; an empty salt is replaced by 16 fresh
    random bytes (always the case unless a test fixes the salt for reproducibility).
    """
    if len(master) != MASTER_KEY_SIZE:
        raise ValueError(f"master key must be {MASTER_KEY_SIZE} bytes")
    if not passphrase:
        raise UserError("the passphrase must not be empty")
    params = params or DEFAULT_PARAMS
    if not params.salt:
        params = replace(params, salt=os.urandom(_SALT_SIZE))
    aad = _header(params)
    nonce = os.urandom(NONCE_SIZE)
    wrapped = XAES256GCM(_derive_kek(passphrase, params)).encrypt(nonce, bytes(master), aad)
    return aad + nonce + wrapped


def unwrap_master_key(slot: bytes, passphrase: str, *, min_params: KdfParams = MIN_PARAMS) -> bytes:
    """The master key in ``slot``; ``WrongPassphrase`` if the passphrase does not open it.

    Raises ``IntegrityError`` without running the KDF when the slot is malformed or its
    parameters are below ``min_params`` or above :data:`MAX_PARAMS`.
    """
    params, aad, nonce, wrapped = _parse(slot)
    if not params.at_least(min_params):
        raise IntegrityError(
            f"key slot KDF parameters ({params.describe()}) are below the minimum "
            f"({min_params.describe()}): refusing a possible downgrade"
        )
    if not MAX_PARAMS.at_least(params) or params.lanes > MAX_PARAMS.lanes:
        raise IntegrityError(
            f"key slot KDF parameters ({params.describe()}) exceed the maximum "
            f"({MAX_PARAMS.describe()})"
        )
    try:
        return XAES256GCM(_derive_kek(passphrase, params)).decrypt(nonce, wrapped, aad)
    except InvalidTag:
        raise WrongPassphrase(WRONG_PASSPHRASE) from None


def open_any_slot(slots: Mapping[str, bytes], passphrase: str, **kw: KdfParams) -> bytes:
    """The master key from the first slot ``passphrase`` opens.

    Malformed or downgraded slots are skipped. If none opens: ``WrongPassphrase`` when
    at least one slot was tried, else the ``IntegrityError`` of the first refused slot,
    and ``ConfigError`` when there are no slots at all. ``kw`` goes to
    :func:`unwrap_master_key` (``min_params``).
    """
    if not slots:
        raise ConfigError("this folder has no key slots")
    tried = False
    refusal: IntegrityError | None = None
    for name in slots:
        try:
            return unwrap_master_key(slots[name], passphrase, **kw)
        except WrongPassphrase:
            tried = True
        except IntegrityError as exc:
            refusal = refusal or IntegrityError(f"key slot {name!r}: {exc.message}")
    if tried or refusal is None:
        raise WrongPassphrase(WRONG_PASSPHRASE)
    raise refusal


def rewrap(
    slot: bytes,
    old_passphrase: str,
    new_passphrase: str,
    *,
    params: KdfParams | None = None,
    min_params: KdfParams = MIN_PARAMS,
) -> bytes:
    """The same master key in a new slot under ``new_passphrase`` with a fresh salt.

    The new slot keeps the old slot's cost parameters unless ``params`` is given.
    """
    master = unwrap_master_key(slot, old_passphrase, min_params=min_params)
    new_params = params or replace(slot_params(slot), salt=b"")
    return wrap_master_key(master, new_passphrase, params=new_params)
