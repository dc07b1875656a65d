"""Failure 5: every field of every object from the server is checked before use.

A peer holding the folder key (buggy or hostile) can commit any bytes it likes; the
decoders must refuse anything the rest of the client cannot act on, with one line
that names the object, instead of an internal error deep in the merge or on disk.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chunksync.errors import IntegrityError
from chunksync.objects import (
    INT64_MAX,
    MAX_CHUNK_SIZE,
    Commit,
    FileManifest,
    ObjectKind,
    Tree,
    decode_object,
)

H = "ab" * 32  # a well-formed hex id
H2 = "cd" * 32


def _entry(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"n": "a.txt", "k": "file", "m": 1, "id": H, "s": 3, "x": False}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not _DROP}


def _tree(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"t": "tree", "e": list(entries)}


def _manifest(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"t": "file", "chunks": [[H, 3]], "size": 3}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not _DROP}


def _commit(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "t": "commit",
        "tree": H,
        "parents": [H2],
        "seq": 2,
        "device": "laptop",
        "author": "alice",
        "time_ns": 1_764_000_000_000_000_000,
        "summary": {"added": 1},
        "message": "",
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not _DROP}


_DROP = object()

MALFORMED: list[tuple[str, ObjectKind, Any, str]] = [
    # trees and their entries
    ("entries not a list", ObjectKind.TREE, {"t": "tree", "e": "abc"}, "must be list"),
    ("entry not an object", ObjectKind.TREE, _tree([1, 2]), "must be an object"),
    ("unknown tree field", ObjectKind.TREE, {**_tree(), "extra": 1}, "unknown field"),
    ("unknown entry field", ObjectKind.TREE, _tree(_entry(evil=1)), "unknown field"),
    ("mtime too large", ObjectKind.TREE, _tree(_entry(m=10**30)), "mtime_ns .* out of range"),
    ("mtime too small", ObjectKind.TREE, _tree(_entry(m=-(2**63) - 1)), "mtime_ns .* out of range"),
    ("mtime a float", ObjectKind.TREE, _tree(_entry(m=1.5)), "'m' must be int, not float"),
    ("mtime a bool", ObjectKind.TREE, _tree(_entry(m=True)), "'m' must be int, not bool"),
    ("mtime a string", ObjectKind.TREE, _tree(_entry(m="1")), "'m' must be int, not str"),
    ("size negative", ObjectKind.TREE, _tree(_entry(s=-1)), "size .* out of range"),
    ("size too large", ObjectKind.TREE, _tree(_entry(s=2**63)), "size .* out of range"),
    ("size a bool", ObjectKind.TREE, _tree(_entry(s=True)), "'s' must be int"),
    ("exec bit an int", ObjectKind.TREE, _tree(_entry(x=1)), "'x' must be bool"),
    ("name not a string", ObjectKind.TREE, _tree(_entry(n=["a"])), "'n' must be str"),
    ("name missing", ObjectKind.TREE, _tree(_entry(n=_DROP)), "missing field 'n'"),
    ("name too long", ObjectKind.TREE, _tree(_entry(n="x" * 1025)), "invalid name"),
    ("name with slash", ObjectKind.TREE, _tree(_entry(n="a/b")), "invalid name"),
    ("kind unknown", ObjectKind.TREE, _tree(_entry(k="fifo", s=_DROP, x=_DROP)), "unknown kind"),
    ("kind not a string", ObjectKind.TREE, _tree(_entry(k=1)), "'k' must be str"),
    ("id not a string", ObjectKind.TREE, _tree(_entry(id=7)), "'id' must be str"),
    ("id malformed", ObjectKind.TREE, _tree(_entry(id="AB" * 32)), "malformed object id"),
    ("file with a target", ObjectKind.TREE, _tree(_entry(l="x")), "only a symlink has a target"),
    ("dir with a size", ObjectKind.TREE, _tree(_entry(k="dir")), "only a file has a size"),
    (
        "symlink with an id",
        ObjectKind.TREE,
        _tree(_entry(k="symlink", s=_DROP, x=_DROP, l="t")),
        "symlink needs a target, no id",
    ),
    (
        "symlink target too long",
        ObjectKind.TREE,
        _tree(_entry(k="symlink", id=_DROP, s=_DROP, x=_DROP, l="t" * 4097)),
        "longer than 4096",
    ),
    (
        "symlink target not a string",
        ObjectKind.TREE,
        _tree(_entry(k="symlink", id=_DROP, s=_DROP, x=_DROP, l=["t"])),
        "'l' must be str",
    ),
    ("entries unsorted", ObjectKind.TREE, _tree(_entry(n="b"), _entry(n="a")), "sorted"),
    # file manifests
    ("chunks not a list", ObjectKind.FILE, _manifest(chunks="x"), "must be list"),
    ("chunk not a pair", ObjectKind.FILE, _manifest(chunks=[[H, 3, 4]]), r"\[id, size\]"),
    ("chunk a string", ObjectKind.FILE, _manifest(chunks=[H]), r"\[id, size\]"),
    ("chunk size a float", ObjectKind.FILE, _manifest(chunks=[[H, 3.0]]), r"\[id, size\]"),
    ("chunk size a bool", ObjectKind.FILE, _manifest(chunks=[[H, True]], size=1), r"\[id, size\]"),
    (
        "chunk size zero",
        ObjectKind.FILE,
        _manifest(chunks=[[H, 0]], size=0),
        "chunk size 0 out of range",
    ),
    (
        "chunk size too big",
        ObjectKind.FILE,
        _manifest(chunks=[[H, MAX_CHUNK_SIZE + 1]], size=MAX_CHUNK_SIZE + 1),
        "chunk size .* out of range",
    ),
    ("file size a string", ObjectKind.FILE, _manifest(size="3"), "'size' must be int"),
    ("sizes do not add up", ObjectKind.FILE, _manifest(size=4), "do not add up"),
    ("unknown manifest field", ObjectKind.FILE, _manifest(extra=[]), "unknown field"),
    # commits
    ("seq negative", ObjectKind.COMMIT, _commit(seq=-1), "sequence number .* out of range"),
    ("seq too large", ObjectKind.COMMIT, _commit(seq=2**63), "sequence number .* out of range"),
    ("seq a float", ObjectKind.COMMIT, _commit(seq=2.0), "'seq' must be int"),
    ("seq a bool", ObjectKind.COMMIT, _commit(seq=True), "'seq' must be int"),
    ("time out of range", ObjectKind.COMMIT, _commit(time_ns=10**40), "time_ns .* out of range"),
    ("parents a string", ObjectKind.COMMIT, _commit(parents=H), "'parents' must be list"),
    ("too many parents", ObjectKind.COMMIT, _commit(parents=[H] * 17), "number of 'parents'"),
    ("parent malformed", ObjectKind.COMMIT, _commit(parents=["zz"]), "malformed object id"),
    ("device not a string", ObjectKind.COMMIT, _commit(device=1), "'device' must be str"),
    ("device too long", ObjectKind.COMMIT, _commit(device="d" * 300), "over 256 characters"),
    ("device with a newline", ObjectKind.COMMIT, _commit(device="a\nb"), "control character"),
    (
        "author with an escape",
        ObjectKind.COMMIT,
        _commit(author="\x1b[31mred"),
        "control character",
    ),
    ("message too long", ObjectKind.COMMIT, _commit(message="m" * 5000), "over 4096 characters"),
    ("summary a list", ObjectKind.COMMIT, _commit(summary=[1]), "'summary' must be dict"),
    ("summary value a string", ObjectKind.COMMIT, _commit(summary={"added": "1"}), "must be int"),
    ("summary value negative", ObjectKind.COMMIT, _commit(summary={"added": -1}), "out of range"),
    ("summary key odd", ObjectKind.COMMIT, _commit(summary={"Added Files!": 1}), "invalid key"),
    (
        "summary too many keys",
        ObjectKind.COMMIT,
        _commit(summary={f"k{i}": 1 for i in range(17)}),
        "number of keys",
    ),
    ("tree missing", ObjectKind.COMMIT, _commit(tree=_DROP), "missing field 'tree'"),
    ("unknown commit field", ObjectKind.COMMIT, _commit(extra=1), "unknown field"),
    ("wrong type tag", ObjectKind.COMMIT, {**_commit(), "t": "tree"}, "not a commit"),
]


@pytest.mark.parametrize(
    ("kind", "doc", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_out_of_range_or_mistyped_fields_are_refused_in_one_line(
    kind: ObjectKind, doc: Any, reason: str
) -> None:
    data = json.dumps(doc).encode()
    with pytest.raises(IntegrityError, match=reason) as info:
        decode_object(kind, data, bytes.fromhex("0123456789ab" + "00" * 26))
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert "0123456789ab" in message  # names the object


@pytest.mark.parametrize(
    "junk", [b"[" * 100_000 + b"]" * 100_000, b'{"t":"tree","e":[NaN]}', b"1e999"]
)
def test_pathological_json_is_an_integrity_error(junk: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_object(ObjectKind.TREE, junk)


def test_well_formed_docs_of_the_table_decode() -> None:
    """The table's base documents are valid, so each row tests exactly its one change."""
    assert isinstance(decode_object(ObjectKind.TREE, json.dumps(_tree(_entry())).encode()), Tree)
    assert isinstance(
        decode_object(ObjectKind.FILE, json.dumps(_manifest()).encode()), FileManifest
    )
    commit = decode_object(ObjectKind.COMMIT, json.dumps(_commit()).encode())
    assert isinstance(commit, Commit) and commit.seq == 2
    edge = _tree(_entry(m=INT64_MAX), _entry(n="b", m=-(2**63), s=INT64_MAX))
    assert decode_object(ObjectKind.TREE, json.dumps(edge).encode()) == Tree.from_doc(edge)
