"""Fuzzing every client-side decoder of server answers: only project errors, ever.

Metadata objects (file manifests, trees, commits) arrive as decrypted JSON that a
buggy or hostile peer wrote; heads, head logs, key slot lists, events, error bodies and
batch frames come straight from the server. Each decoder is fed JSON of every shape
(huge numbers, NaN, deep nesting, lone surrogates), raw bytes, and near-misses of a
valid encoding, and must return or raise a ChunksyncError (see strategies.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chunksync import wire
from chunksync.objects import (
    ChunkRef,
    Commit,
    FileManifest,
    ObjectId,
    ObjectKind,
    Tree,
    TreeEntry,
    TreeParts,
    decode_object,
)
from chunksync.transport import base
from chunksync.transport.tokens import renew_at
from chunksync.treeparts import load_tree

from .strategies import FUZZ, json_values, mutations, only_project_errors, wild_json

pytestmark = pytest.mark.unit

ID, ID2 = ObjectId(bytes(range(32))), ObjectId(bytes(range(1, 33)))
ID3 = ObjectId(bytes(range(2, 34)))
VALID = {
    ObjectKind.FILE: FileManifest(10, (ChunkRef(ID, 4), ChunkRef(ID2, 6))).encode(),
    ObjectKind.TREE: Tree(
        (
            TreeEntry("a", "file", ID, 3, 5),
            TreeEntry("b", "dir", ID2),
            TreeEntry("c", "symlink", None, 0, 1, target="a"),
        )
    ).encode(),
    ObjectKind.COMMIT: Commit(ID, (ID2,), 7, "laptop", "alice", 1, {"added": 2}, "m").encode(),
}
METADATA = st.sampled_from([ObjectKind.FILE, ObjectKind.TREE, ObjectKind.COMMIT])
SPLIT_TREE = TreeParts((ID, ID2)).encode()  # a large directory's index of parts
HEX = st.sampled_from(["ab" * 32, "00" * 32, "AB" * 32, "xyz"]) | st.text(max_size=70)


def _replace_values(doc: object, draw: st.DrawFn) -> object:
    """The same document shape with some values swapped for arbitrary JSON."""
    if isinstance(doc, dict):
        return {
            k: draw(json_values) if draw(st.integers(0, 4)) == 0 else _replace_values(v, draw)
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [_replace_values(v, draw) for v in doc]
    return draw(json_values) if draw(st.integers(0, 3)) == 0 else doc


@st.composite
def near_documents(draw: st.DrawFn, valid: bytes) -> bytes:
    """A valid object's JSON with values replaced, or its bytes mutated."""
    if draw(st.booleans()):
        doc = _replace_values(json.loads(valid), draw)
        return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
    return draw(mutations(valid))


@given(kind=METADATA, data=wild_json)
@FUZZ
def test_metadata_decoder_takes_any_json(kind: ObjectKind, data: bytes) -> None:
    only_project_errors(decode_object, kind, data, ID)


@given(kind=METADATA, data=st.data())
@FUZZ
def test_metadata_decoder_takes_near_misses(kind: ObjectKind, data: st.DataObject) -> None:
    only_project_errors(decode_object, kind, data.draw(near_documents(VALID[kind])), ID)


@given(data=st.data())
@FUZZ
def test_split_tree_decoder_takes_near_misses(data: st.DataObject) -> None:
    only_project_errors(decode_object, ObjectKind.TREE, data.draw(near_documents(SPLIT_TREE)), ID)


@given(
    first=st.sets(st.sampled_from("abcz"), max_size=4),
    second=st.sets(st.sampled_from("abcz"), max_size=4),
    nested=st.booleans(),
)
@FUZZ
def test_split_tree_assembly_takes_any_parts(first: set, second: set, nested: bool) -> None:
    """Parts as a peer's decoded objects may be (each a valid leaf, but empty,
    overlapping, out of order or split itself): a whole tree or an IntegrityError."""

    def leaf(names: set[str]) -> Tree:
        return Tree.of([TreeEntry(n, "file", ID, 1) for n in names])

    objects = {
        ID: leaf(first),
        ID2: TreeParts((ID, ID3)) if nested else leaf(second),
        ID3: TreeParts((ID, ID2)),
    }
    tree = only_project_errors(load_tree, ID3, lambda oid: objects[oid])
    if tree is not None:
        assert [e.name for e in tree.entries] == sorted(first) + sorted(second)


@given(
    doc=json_values
    | st.fixed_dictionaries(
        {"head": HEX | st.none(), "seq": json_values}, optional={"epoch": json_values}
    )
)
@FUZZ
def test_head_state_decoder(doc: object) -> None:
    only_project_errors(wire.HeadState.from_wire, doc)


entries = st.fixed_dictionaries(
    {
        "seq": json_values,
        "head": HEX,
        "previous": HEX | st.none(),
        "time": json_values,
        "device": json_values,
        "user": json_values,
    }
)


@given(
    doc=json_values
    | st.fixed_dictionaries({"entries": st.lists(entries | json_values, max_size=4)}),
    after=st.integers(0, 5),
    limit=st.integers(1, 5),
)
@example(doc={"entries": [{"seq": float("inf")}]}, after=0, limit=1)  # was OverflowError
@example(
    doc={
        "entries": [
            {"seq": 1, "head": "", "previous": None, "time": 10**400, "device": "", "user": ""}
        ]
    },
    after=0,
    limit=1,
)  # OverflowError
@FUZZ
def test_head_log_decoder(doc: object, after: int, limit: int) -> None:
    def decode() -> list[wire.HeadLogEntry]:
        items = base.field_of(doc, "entries", list)
        return base.check_log([wire.HeadLogEntry.from_wire(e) for e in items], after, limit)

    only_project_errors(decode)


@given(data=wild_json)
@example(data=b"[" * 100_000)  # was RecursionError
@FUZZ
def test_json_body_parser(data: bytes) -> None:
    only_project_errors(base.parse_json, data, "GET /x")


error_docs = st.fixed_dictionaries(
    {},
    optional={
        "error": json_values,
        "head": HEX,
        "seq": json_values,
        "code": json_values,
        "current": json_values,
    },
)


@given(
    status=st.integers(100, 599),
    body=wild_json
    | error_docs.map(lambda d: json.dumps(d, allow_nan=True).encode("utf-8", "surrogatepass")),
)
@example(status=400, body=b"[" * 100_000)  # was RecursionError
@FUZZ
def test_error_answers_become_project_errors(status: int, body: bytes) -> None:
    error = base.status_error(status, "Reason", body, "GET /x")
    assert "\n" not in error.message


@given(
    doc=json_values
    | st.fixed_dictionaries(
        {
            "slots": st.dictionaries(
                st.text(max_size=70), st.text(max_size=40) | json_values, max_size=4
            )
        }
    )
)
@FUZZ
def test_key_slot_list_decoder(doc: object) -> None:
    only_project_errors(base.parse_keyslots, doc)


@given(
    text=st.text(max_size=200)
    | wild_json.map(lambda b: b.decode("utf-8", "replace"))
    | st.builds(
        lambda d: json.dumps(d),
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["hello", "head", "x"]),
                "folder": st.just("f"),
                "head": HEX | st.none(),
                "seq": json_values,
            }
        ),
    )
)
@example(text="[" * 100_000)  # was RecursionError
@FUZZ
def test_event_decoder(text: str) -> None:
    only_project_errors(base.parse_event, text, "f")


@given(expires=json_values, now=st.floats(0, 2e9))
@FUZZ
def test_token_expiry_from_the_server(expires: object, now: float) -> None:
    renew_at(expires, now)  # type: ignore[arg-type]


FRAMES = wire.encode_download_frames([(ID, b"one"), (ID2, b"two" * 30)])


class _Reader:
    """The part of aiohttp's StreamReader that read_frames uses, over fixed bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    async def readexactly(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        if len(chunk) < n:
            raise asyncio.IncompleteReadError(chunk, n)
        return chunk


@given(data=st.binary(max_size=300) | mutations(FRAMES))
@FUZZ
def test_download_frame_decoders(data: bytes) -> None:
    only_project_errors(lambda: list(wire.iter_download_frames(data)))
    asked = {ID.hex(): ID, ID2.hex(): ID2}
    only_project_errors(asyncio.run, base.read_frames(_Reader(data), asked))
