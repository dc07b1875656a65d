"""How the index's records are laid out in LMDB, and the checks that read them back.

The index is a cache on the user's disk: a bad sector, a crash of another tool, or a
person poking at it can leave a record that LMDB returns happily but that is not what
chunksync wrote (random bytes, a cut-short value, a key of the wrong length, JSON of
another shape). Every decoder here checks the whole record and raises
:class:`RecordDamaged` with a one-line reason instead of returning something half
right; :class:`~chunksync.storage.index.Index` turns that into
:class:`~chunksync.errors.IndexDamaged` and has the index rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from ..objects import ID_SIZE, ObjectId, ObjectKind

__all__ = [
    "FileState",
    "RecordDamaged",
    "decode_conflict",
    "decode_event",
    "decode_object",
    "decode_path_record",
    "decode_tree_id",
    "dump_json",
    "path_key",
    "with_path",
]

_STATE = struct.Struct(">qqqQIB32s")  # size, mtime, ctime, inode, mode, flags, manifest
_FLAG_RACY = 1
_PATH_LEN = struct.Struct(">H")
_MAX_KEY = 480  # LMDB's default limit is 511 bytes
KEEP = _MAX_KEY - 33  # bytes of a long path that its key keeps in order
_EVENT_FIELDS = {"time_ns": int, "path": str, "change": str, "device": str}


class RecordDamaged(ValueError):
    """A record that chunksync cannot have written; the message says which and why."""


def path_key(path: str) -> bytes:
    """LMDB key of a path: its UTF-8 bytes, or for very long paths a prefix plus a hash.

    Values of path-keyed databases always start with the full path, so the key only
    has to be unique and keep prefix order for the first ``KEEP`` bytes.
    """
    raw = path.encode()
    if not raw:
        return b"\x00"
    if len(raw) <= _MAX_KEY:
        return raw
    return raw[:KEEP] + b"\x00" + hashlib.blake2b(raw, digest_size=32).digest()


def with_path(path: str, payload: bytes) -> bytes:
    raw = path.encode()
    return _PATH_LEN.pack(len(raw)) + raw + payload


def decode_path_record(db: str, key: bytes, value: bytes) -> tuple[str, bytes]:
    """The path and payload of a record of a path-keyed database, checked against its key."""
    try:
        (n,) = _PATH_LEN.unpack_from(value)
        if len(value) < 2 + n:
            raise ValueError("cut short")
        raw = value[2 : 2 + n]
        path = raw.decode()
    except (struct.error, ValueError) as exc:
        raise RecordDamaged(f"{db} record: {exc}") from None
    if raw != key if 0 < n <= _MAX_KEY else path_key(path) != key:  # (the common case first)
        raise RecordDamaged(f"{db} record: its key does not match the path it holds")
    return path, value[2 + n :]


def dump_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _load_json(db: str, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise RecordDamaged(f"{db} record: not JSON") from None
    if not isinstance(doc, dict):
        raise RecordDamaged(f"{db} record: not a JSON object")
    return doc


def decode_event(key: bytes, raw: bytes) -> tuple[int, dict[str, Any]]:
    if len(key) != 8:
        raise RecordDamaged(f"events record: key of {len(key)} bytes, not 8")
    event = _load_json("events", raw)
    for name, kind in _EVENT_FIELDS.items():
        if not isinstance(event.get(name), kind):
            raise RecordDamaged(f"events record: no {name}")
    return struct.unpack(">Q", key)[0], event


def decode_conflict(key: bytes, raw: bytes) -> tuple[str, dict[str, Any]]:
    path, payload = decode_path_record("conflicts", key, raw)
    record = _load_json("conflicts", payload)
    copy = record.get("copy_path")
    if copy is not None and not isinstance(copy, str):
        raise RecordDamaged("conflicts record: copy_path is not a path")
    if not record.get("dismissed") and not isinstance(record.get("explanation"), str):
        raise RecordDamaged("conflicts record: no explanation")
    return path, record


def decode_object(raw: bytes) -> tuple[ObjectKind, bytes]:
    """Kind and plaintext of a cached object (its id is checked where the keys are)."""
    try:
        return ObjectKind(raw[0]), raw[1:]
    except (IndexError, ValueError):
        raise RecordDamaged("objects record: no valid kind") from None


def decode_tree_id(raw: bytes) -> ObjectId:
    if len(raw) != ID_SIZE:
        raise RecordDamaged(f"dirtree record: a tree id of {len(raw)} bytes")
    return ObjectId(raw)


@dataclass(frozen=True, slots=True)
class FileState:
    """The stat-cache row of one file: what it looked like when it was last hashed.

    ``racy`` marks a file whose mtime was too close to the scan time to trust (as in
    git's racy-clean check): the next scan reads it again even if the stat matches.
    """

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    mode: int
    manifest_id: ObjectId
    racy: bool = False

    def encode(self) -> bytes:
        flags = _FLAG_RACY if self.racy else 0
        return _STATE.pack(
            self.size, self.mtime_ns, self.ctime_ns, self.inode, self.mode, flags, self.manifest_id
        )

    @classmethod
    def decode(cls, path: str, raw: bytes) -> FileState:
        try:
            size, mtime, ctime, inode, mode, flags, manifest = _STATE.unpack(raw)
        except struct.error:
            raise RecordDamaged(f"stat record: {len(raw)} bytes, not {_STATE.size}") from None
        if size < 0 or flags & ~_FLAG_RACY:
            raise RecordDamaged("stat record: impossible size or flags")
        return cls(
            path, size, mtime, ctime, inode, mode, ObjectId(manifest), bool(flags & _FLAG_RACY)
        )
