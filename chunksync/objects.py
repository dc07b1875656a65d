"""Object ids, the content-addressed value types and their canonical encodings.

Four kinds of object make up a folder's history, exactly as in git or restic:

* a **chunk** is a piece of file content cut by the chunker;
* a **file manifest** lists a file's chunks in order;
* a **tree** lists one directory's entries, sorted by name; a large directory's
  listing is stored as a :class:`TreeParts` index of leaf trees, each a run of its
  entries (:mod:`chunksync.treeparts` splits and reassembles them);
* a **commit** (snapshot) names a root tree, its parents and who made it.

Every object is identified by the keyed BLAKE3 hash of its plaintext encoding
(computed in :mod:`chunksync.crypto`, so this module never hashes). The encodings here
are canonical: the same value gives the same bytes on every device, which is what makes
equal subtrees have equal ids. They are compact JSON (sorted keys, no spaces, UTF-8) so
a human can read a decrypted object while debugging.

Decoders (``from_doc``) check every field: exact JSON types (no bool for an int, no
float, no string for a list), no unknown keys, and ranges the client can act on (an
mtime ``os.utime`` takes, chunk sizes the chunker makes, bounded counts, strings without
control characters). A peer holding the key may be buggy or hostile: its malformed
object is refused in one line before anything is built on it.

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
    "TreeParts",
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

# Bounds on values read from other devices (see the module docstring).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # times in ns that os.utime takes (1677..2262)
MAX_CHUNK_SIZE = 16 << 20  # the chunker's hard limit on max_size
MAX_CHUNKS = 1 << 24  # chunks of one file
MAX_ENTRIES = 1 << 20  # entries of one directory
MAX_PARTS = 1 << 16  # parts of one split directory listing (chunksync.treeparts)
MAX_PARENTS = 16  # a merge has 2; last-write-wins side commits add one
MAX_NAME_CHARS = 1024  # sanity bound; chunksync.paths checks 255 bytes
MAX_TARGET = 4096  # symlink target, PATH_MAX
MAX_LABEL = 256  # device and author names
MAX_MESSAGE = 4096
MAX_SUMMARY_KEYS = 16
_SUMMARY_KEY = re.compile(r"\A[a-z][a-z0-9_]{0,31}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MISSING = object()


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


def _range(value: int, lo: int, hi: int, what: str) -> None:
    if not lo <= value <= hi:
        raise IntegrityError(f"{what} {value!r:.40} out of range ({lo}..{hi})")


def _text(value: str, limit: int, what: str) -> None:
    if len(value) > limit or _CONTROL.search(value):
        raise IntegrityError(
            f"{what} {value!r:.80}: over {limit} characters or a control character"
        )


def _field(doc: dict[str, Any], key: str, typ: type, what: str, default: Any = _MISSING) -> Any:
    """``doc[key]``, which must have exactly type ``typ`` (``bool`` is not an ``int``)."""
    if key not in doc:
        if default is _MISSING:
            raise IntegrityError(f"{what}: missing field {key!r}")
        return default
    value = doc[key]
    if type(value) is not typ:
        raise IntegrityError(
            f"{what}: field {key!r} must be {typ.__name__}, not {type(value).__name__}"
        )
    return value


def _keys(doc: Any, allowed: frozenset[str], what: str) -> None:
    if type(doc) is not dict:
        raise IntegrityError(f"{what} must be an object, not {type(doc).__name__}")
    if extra := doc.keys() - allowed:
        raise IntegrityError(f"{what}: unknown field {sorted(extra)[0]!r:.40}")


def _list(doc: dict[str, Any], key: str, limit: int, what: str) -> list[Any]:
    items: list[Any] = _field(doc, key, list, what)
    _range(len(items), 0, limit, f"{what}: number of {key!r}")
    return items


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One chunk of a file; its offset is implied by the order in the manifest."""

    id: ObjectId
    size: int

    def __post_init__(self) -> None:
        _check_id(self.id, "chunk")
        _range(self.size, 1, MAX_CHUNK_SIZE, "chunk size")


@dataclass(frozen=True, slots=True)
class FileManifest:
    """A file's content: its chunks in order. Names and metadata live in the tree."""

    size: int
    chunks: tuple[ChunkRef, ...]

    def __post_init__(self) -> None:
        _range(self.size, 0, INT64_MAX, "file size")
        _range(len(self.chunks), 0, MAX_CHUNKS, "file manifest: number of chunks")
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
        what = "file manifest"
        _keys(doc, _MANIFEST_KEYS, what)
        chunks = []
        for item in _list(doc, "chunks", MAX_CHUNKS, what):
            if type(item) is not list or len(item) != 2 or type(item[1]) is not int:
                raise IntegrityError(f"{what}: a chunk must be [id, size], not {item!r:.80}")
            chunks.append(ChunkRef(id_from_hex(item[0]), item[1]))
        return cls(size=_field(doc, "size", int, what), chunks=tuple(chunks))


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
        if type(self.name) is not str or len(self.name) > MAX_NAME_CHARS:
            raise IntegrityError(f"tree entry: invalid name {self.name!r:.80}")
        if self.kind not in ENTRY_KINDS:
            raise IntegrityError(f"tree entry '{self.name}': unknown kind {self.kind!r}")
        if not self.name or "/" in self.name or "\0" in self.name or self.name in (".", ".."):
            raise IntegrityError(f"tree entry: invalid name '{self.name:.80}'")
        if self.name != normalize_name(self.name):
            raise IntegrityError(f"tree entry '{self.name}': name is not NFC")
        if self.kind == "symlink":
            if self.id is not None or self.target is None:
                raise IntegrityError(f"tree entry '{self.name}': symlink needs a target, no id")
        else:
            if self.id is None:
                raise IntegrityError(f"tree entry '{self.name}': {self.kind} needs an id")
            _check_id(self.id, f"tree entry '{self.name}'")
            if self.target is not None:
                raise IntegrityError(f"tree entry '{self.name}': only a symlink has a target")
        if self.target is not None and len(self.target) > MAX_TARGET:
            raise IntegrityError(
                f"tree entry '{self.name}': symlink target longer than {MAX_TARGET}"
            )
        _range(self.size, 0, INT64_MAX, f"tree entry '{self.name:.80}': size")
        _range(self.mtime_ns, INT64_MIN, INT64_MAX, f"tree entry '{self.name:.80}': mtime_ns")

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
        _keys(doc, _ENTRY_KEYS, "tree entry")
        name = _field(doc, "n", str, "tree entry")
        what = f"tree entry '{name:.80}'"
        kind = _field(doc, "k", str, what)
        if kind != "file" and ("s" in doc or "x" in doc):
            raise IntegrityError(f"{what}: only a file has a size and an exec bit")
        if kind != "symlink" and "l" in doc:
            raise IntegrityError(f"{what}: only a symlink has a target")
        oid = _field(doc, "id", str, what, None)
        return cls(
            name=name,
            kind=kind,
            id=id_from_hex(oid) if oid is not None else None,
            size=_field(doc, "s", int, what, 0),
            mtime_ns=_field(doc, "m", int, what, 0),
            executable=_field(doc, "x", bool, what, False),
            target=_field(doc, "l", str, what, None),
        )


@dataclass(frozen=True, slots=True)
class Tree:
    """One directory: entries sorted by name (code point order), names unique."""

    entries: tuple[TreeEntry, ...] = ()

    def __post_init__(self) -> None:
        _range(len(self.entries), 0, MAX_ENTRIES, "tree: number of entries")
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
        _keys(doc, _TREE_KEYS, "tree")
        return cls(tuple(TreeEntry.from_doc(e) for e in _list(doc, "e", MAX_ENTRIES, "tree")))


@dataclass(frozen=True, slots=True)
class TreeParts:
    """A large directory's listing stored in parts: the ids of leaf trees, each holding a
    run of the directory's entries, in name order.

    Stored as a TREE object, so a directory entry names it like any listing; only
    :mod:`chunksync.treeparts` looks inside (it checks, when reassembling, that every part
    is a non-empty leaf tree and that the names stay sorted and unique across parts).
    At least two parts (one would be the leaf itself), at most :data:`MAX_PARTS`, no id
    twice.
    """

    parts: tuple[ObjectId, ...]

    def __post_init__(self) -> None:
        _range(len(self.parts), 2, MAX_PARTS, "split tree: number of parts")
        for part in self.parts:
            _check_id(part, "split tree part")
        if len(set(self.parts)) != len(self.parts):
            raise IntegrityError("split tree names one part twice")

    def encode(self) -> bytes:
        return _canonical({"t": "tree", "p": [p.hex() for p in self.parts]})

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TreeParts:
        what = "split tree"
        _keys(doc, _PARTS_KEYS, what)
        return cls(tuple(id_from_hex(p) for p in _list(doc, "p", MAX_PARTS, what)))


def _decode_tree(doc: dict[str, Any]) -> Tree | TreeParts:
    """A TREE object is a listing (``e``) or, for a large directory, an index (``p``)."""
    if type(doc) is dict and "p" in doc:
        return TreeParts.from_doc(doc)
    return Tree.from_doc(doc)


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
        _range(len(self.parents), 0, MAX_PARENTS, "commit: number of parents")
        for parent in self.parents:
            _check_id(parent, "commit parent")
        _range(self.seq, 0, INT64_MAX - 1, "commit sequence number")
        _range(self.time_ns, INT64_MIN, INT64_MAX, "commit time_ns")
        _text(self.device, MAX_LABEL, "commit device")
        _text(self.author, MAX_LABEL, "commit author")
        _text(self.message, MAX_MESSAGE, "commit message")
        _range(len(self.summary), 0, MAX_SUMMARY_KEYS, "commit summary: number of keys")
        for key, value in self.summary.items():
            if type(key) is not str or not _SUMMARY_KEY.match(key):
                raise IntegrityError(f"commit summary: invalid key {key!r:.40}")
            _range(value, 0, INT64_MAX, f"commit summary {key!r}")

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
        what = "commit"
        _keys(doc, _COMMIT_KEYS, what)
        summary: dict[str, Any] = _field(doc, "summary", dict, what, {})
        for key, value in summary.items():
            if type(value) is not int:
                raise IntegrityError(
                    f"commit summary {key!r:.40} must be int, not {type(value).__name__}"
                )
        return cls(
            tree=id_from_hex(_field(doc, "tree", str, what)),
            parents=tuple(id_from_hex(p) for p in _list(doc, "parents", MAX_PARENTS, what)),
            seq=_field(doc, "seq", int, what),
            device=_field(doc, "device", str, what),
            author=_field(doc, "author", str, what),
            time_ns=_field(doc, "time_ns", int, what),
            summary=dict(summary),
            message=_field(doc, "message", str, what, ""),
        )


_MANIFEST_KEYS = frozenset({"t", "chunks", "size"})
_ENTRY_KEYS = frozenset({"n", "k", "m", "id", "s", "x", "l"})
_TREE_KEYS = frozenset({"t", "e"})
_PARTS_KEYS = frozenset({"t", "p"})
_COMMIT_KEYS = frozenset(
    {"t", "tree", "parents", "seq", "device", "author", "time_ns", "summary", "message"}
)

_DECODERS = {
    ObjectKind.FILE: ("file", FileManifest.from_doc),
    ObjectKind.TREE: ("tree", _decode_tree),
    ObjectKind.COMMIT: ("commit", Commit.from_doc),
}


def decode_object(
    kind: ObjectKind, data: bytes, oid: bytes | None = None
) -> FileManifest | Tree | TreeParts | Commit:
    """Parse a decrypted metadata object, refusing anything malformed or mistyped, in
    one line that names the object by its short id when ``oid`` is given. A TREE object
    decodes to a :class:`Tree` or a :class:`TreeParts` (use
    :func:`chunksync.treeparts.load_tree` to get a directory's entries either way)."""
    named = f"{kind.name.lower()} object" + (f" {short_id(oid)}" if oid is not None else "")
    try:
        tag, decoder = _DECODERS[kind]
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("t") != tag:
            raise IntegrityError(f"not a {tag}")
        return decoder(doc)
    except IntegrityError as exc:
        raise IntegrityError(f"malformed {named}: {exc.message}") from exc
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise IntegrityError(f"malformed {named}: {reason}") from exc
