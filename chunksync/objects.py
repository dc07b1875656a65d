"""Object ids, the content-addressed value types and their canonical encodings.

Four kinds of object make up a folder's history, exactly as in git or restic:

* a **chunk** is a piece of file content cut by the chunker;
* a **file manifest** lists a file's chunks in order;
* a **tree** lists one directory's entries, sorted by name;
* a **commit** (snapshot) names a root tree, its parents and who made it.

Every object is identified by the keyed BLAKE3 hash of its plaintext encoding
(computed in :mod:`chunksync.crypto`, so this module never hashes). The encodings here
are canonical: the same value gives the same bytes on every device, which is what makes
equal subtrees have equal ids. They are compact JSON (sorted keys, no spaces, UTF-8) so
a human can read a decrypted object while debugging.

This module does no I/O and imports only :mod:`chunksync.errors`.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal, NewType

from .errors import IntegrityError

__all__ = [
    "ChunkRef",
    "Commit",
    "EntryKind",
    "FileManifest",
    "ObjectId",
    "ObjectKind",
    "Tree",
    "TreeEntry",
    "decode_object",
    "id_from_hex",
    "is_hex_id",
    "normalize_name",
    "short_id",
]

ObjectId = NewType("ObjectId", bytes)
"""32 raw bytes: the keyed BLAKE3 hash of an object's plaintext encoding."""

ID_SIZE = 32
_HEX_ID = re.compile(r"\A[0-9a-f]{64}\Z")


class ObjectKind(enum.IntEnum):
    """Object type, recorded in every blob header and bound into its AEAD."""

    CHUNK = 1
    FILE = 2
    TREE = 3
    COMMIT = 4


EntryKind = Literal["file", "dir", "symlink"]
ENTRY_KINDS: tuple[str, ...] = ("file", "dir", "symlink")


def is_hex_id(text: str) -> bool:
    """True for exactly 64 lowercase hex digits (the only id form on the wire)."""
    return bool(_HEX_ID.match(text))


def id_from_hex(text: str) -> ObjectId:
    if not isinstance(text, str) or not is_hex_id(text):
        raise IntegrityError(f"malformed object id {text!r:.80}")
    return ObjectId(bytes.fromhex(text))


def short_id(oid: bytes | str) -> str:
    """The first 12 hex digits, for logs and listings (like restic's Str())."""
    return (oid if isinstance(oid, str) else oid.hex())[:12]


def normalize_name(name: str) -> str:
    """Names are stored NFC so macOS (NFD) and Linux devices agree on ids."""
    return unicodedata.normalize("NFC", name)


def _check_id(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != ID_SIZE:
        raise IntegrityError(f"{what}: object id must be {ID_SIZE} bytes")


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One chunk of a file; its offset is implied by the order in the manifest."""

    id: ObjectId
    size: int

    def __post_init__(self) -> None:
        _check_id(self.id, "chunk")
        if self.size < 0:
            raise IntegrityError("chunk size must not be negative")


@dataclass(frozen=True, slots=True)
class FileManifest:
    """A file's content: its chunks in order. Names and metadata live in the tree."""

    size: int
    chunks: tuple[ChunkRef, ...]

    def __post_init__(self) -> None:
        if sum(c.size for c in self.chunks) != self.size:
            raise IntegrityError("file manifest: chunk sizes do not add up to the file size")

    def encode(self) -> bytes:
        # Written out by hand: the scanner encodes one manifest per file read, and this
        # is several times faster than json.dumps while giving the very same bytes
        # (keys in sorted order, no spaces), as a unit test checks.
        chunks = ",".join(f'["{c.id.hex()}",{c.size}]' for c in self.chunks)
        return f'{{"chunks":[{chunks}],"size":{self.size},"t":"file"}}'.encode()

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> FileManifest:
        chunks = tuple(ChunkRef(id_from_hex(h), int(s)) for h, s in doc["chunks"])
        return cls(size=int(doc["size"]), chunks=chunks)


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One directory entry.

    ``id`` is the file manifest id for files, the subtree id for directories and None
    for symlinks, whose ``target`` is kept in the entry itself. ``executable`` is the
    only permission bit that syncs (as in Syncthing and Dropbox).
    """

    name: str
    kind: EntryKind
    id: ObjectId | None = None
    size: int = 0
    mtime_ns: int = 0
    executable: bool = False
    target: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENTRY_KINDS:
            raise IntegrityError(f"tree entry {self.name!r}: unknown kind {self.kind!r}")
        if not self.name or "/" in self.name or "\0" in self.name or self.name in (".", ".."):
            raise IntegrityError(f"tree entry: invalid name {self.name!r:.80}")
        if self.name != normalize_name(self.name):
            raise IntegrityError(f"tree entry {self.name!r}: name is not NFC")
        if self.kind == "symlink":
            if self.id is not None or self.target is None:
                raise IntegrityError(f"tree entry {self.name!r}: symlink needs a target, no id")
        else:
            if self.id is None:
                raise IntegrityError(f"tree entry {self.name!r}: {self.kind} needs an id")
            _check_id(self.id, f"tree entry {self.name!r}")

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"n": self.name, "k": self.kind, "m": self.mtime_ns}
        if self.id is not None:
            doc["id"] = self.id.hex()
        if self.kind == "file":
            doc["s"] = self.size
            doc["x"] = self.executable
        if self.target is not None:
            doc["l"] = self.target
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TreeEntry:
        return cls(
            name=doc["n"],
            kind=doc["k"],
            id=id_from_hex(doc["id"]) if "id" in doc else None,
            size=int(doc.get("s", 0)),
            mtime_ns=int(doc.get("m", 0)),
            executable=bool(doc.get("x", False)),
            target=doc.get("l"),
        )


@dataclass(frozen=True, slots=True)
class Tree:
    """One directory: entries sorted by name (code point order), names unique."""

    entries: tuple[TreeEntry, ...] = ()

    def __post_init__(self) -> None:
        names = [e.name for e in self.entries]
        if names != sorted(names):
            raise IntegrityError("tree entries are not sorted by name")
        if len(set(names)) != len(names):
            raise IntegrityError("tree has duplicate entry names")

    @classmethod
    def of(cls, entries: list[TreeEntry] | tuple[TreeEntry, ...]) -> Tree:
        """Build a tree from entries in any order."""
        return cls(tuple(sorted(entries, key=lambda e: e.name)))

    def get(self, name: str) -> TreeEntry | None:
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None

    def by_name(self) -> dict[str, TreeEntry]:
        return {e.name: e for e in self.entries}

    def encode(self) -> bytes:
        return _canonical({"t": "tree", "e": [e.to_doc() for e in self.entries]})

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Tree:
        return cls(tuple(TreeEntry.from_doc(e) for e in doc["e"]))


@dataclass(frozen=True, slots=True)
class Commit:
    """A snapshot: the root tree plus who made it, when, and on top of what.

    ``seq`` grows by one along every chain of commits; each device remembers the
    highest it accepted, so a server that offers an older head is caught (rollback).
    """

    tree: ObjectId
    parents: tuple[ObjectId, ...]
    seq: int
    device: str
    author: str
    time_ns: int
    summary: dict[str, int] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        _check_id(self.tree, "commit tree")
        for parent in self.parents:
            _check_id(parent, "commit parent")
        if self.seq < 0:
            raise IntegrityError("commit sequence number must not be negative")

    def encode(self) -> bytes:
        return _canonical(
            {
                "t": "commit",
                "tree": self.tree.hex(),
                "parents": [p.hex() for p in self.parents],
                "seq": self.seq,
                "device": self.device,
                "author": self.author,
                "time_ns": self.time_ns,
                "summary": dict(sorted(self.summary.items())),
                "message": self.message,
            }
        )

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Commit:
        return cls(
            tree=id_from_hex(doc["tree"]),
            parents=tuple(id_from_hex(p) for p in doc["parents"]),
            seq=int(doc["seq"]),
            device=str(doc["device"]),
            author=str(doc["author"]),
            time_ns=int(doc["time_ns"]),
            summary={str(k): int(v) for k, v in doc.get("summary", {}).items()},
            message=str(doc.get("message", "")),
        )


_DECODERS = {
    ObjectKind.FILE: ("file", FileManifest.from_doc),
    ObjectKind.TREE: ("tree", Tree.from_doc),
    ObjectKind.COMMIT: ("commit", Commit.from_doc),
}


def decode_object(kind: ObjectKind, data: bytes) -> FileManifest | Tree | Commit:
    """Parse a decrypted metadata object, refusing anything malformed or mistyped."""
    try:
        tag, decoder = _DECODERS[kind]
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("t") != tag:
            raise IntegrityError(f"object is not a {tag}")
        return decoder(doc)
    except IntegrityError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"malformed {kind.name.lower()} object: {exc}") from exc
