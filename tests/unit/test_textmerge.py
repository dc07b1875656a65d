"""The content merge as a pure function: a table of cases, and hypothesis properties.

Properties: for random bases and non-overlapping edits the merge holds every line
either side changed (and is exactly both edits applied); for any edits, the result is
either a refusal (the sync keeps a conflicted copy: no version lost) or a merge that
still holds every line either side added; and the result never depends on which side
is "mine".
"""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunksync.jsonmerge import NotSure, dump_like, merge_values, parse
from chunksync.textmerge import Merged, Refused, merge_content

pytestmark = pytest.mark.unit

B = b"one\ntwo\nthree\nfour\nfive\n"

# (name, base, mine, theirs, format, expected bytes or a fragment of the refusal)
CASES = [
    (
        "different lines",
        B,
        B.replace(b"one", b"ONE"),
        B.replace(b"five", b"FIVE"),
        "text",
        b"ONE\ntwo\nthree\nfour\nFIVE\n",
    ),
    (
        "same change both sides",
        B,
        B.replace(b"two", b"2"),
        B.replace(b"two", b"2"),
        "text",
        b"one\n2\nthree\nfour\nfive\n",
    ),
    (
        "insert and delete apart",
        B,
        b"zero\n" + B,
        B.replace(b"four\n", b""),
        "text",
        b"zero\none\ntwo\nthree\nfive\n",
    ),
    ("same line", B, B.replace(b"two", b"x"), B.replace(b"two", b"y"), "text", "same lines"),
    ("adjacent lines", B, B.replace(b"two", b"x"), B.replace(b"three", b"y"), "text", "same lines"),
    ("both append", B, B + b"six\n", B + b"seven\n", "text", "same lines"),
    (
        "CRLF kept",
        B.replace(b"\n", b"\r\n"),
        B.replace(b"\n", b"\r\n").replace(b"one", b"1"),
        B.replace(b"\n", b"\r\n").replace(b"five", b"5"),
        "text",
        b"1\r\ntwo\r\nthree\r\nfour\r\n5\r\n",
    ),
    (
        "CR only kept",
        B.replace(b"\n", b"\r"),
        B.replace(b"\n", b"\r").replace(b"one", b"1"),
        B.replace(b"\n", b"\r").replace(b"five", b"5"),
        "text",
        b"1\rtwo\rthree\rfour\r5\r",
    ),
    (
        "one side converts to CRLF",
        B,
        B.replace(b"\n", b"\r\n"),
        B.replace(b"one", b"1"),
        "text",
        b"1\r\ntwo\r\nthree\r\nfour\r\nfive\r\n",
    ),
    (
        "both convert line endings differently",
        B,
        B.replace(b"\n", b"\r\n"),
        B.replace(b"\n", b"\r"),
        "text",
        "line endings",
    ),
    (
        "mixed endings kept per line",
        b"a\r\nb\nc\r\nd\ne\n",
        b"A\r\nb\nc\r\nd\ne\n",
        b"a\r\nb\nc\r\nd\nE\n",
        "text",
        b"A\r\nb\nc\r\nd\nE\n",
    ),
    (
        "no final newline kept",
        B.rstrip(),
        B.rstrip().replace(b"one", b"1"),
        B.rstrip().replace(b"five", b"5"),
        "text",
        b"1\ntwo\nthree\nfour\n5",
    ),
    (
        "final newline removed on one side",
        B,
        B.rstrip(),
        B.replace(b"one", b"1"),
        "text",
        b"1\ntwo\nthree\nfour\nfive",
    ),
    (
        "UTF-8 BOM kept",
        codecs.BOM_UTF8 + B,
        codecs.BOM_UTF8 + B.replace(b"one", b"1"),
        codecs.BOM_UTF8 + B.replace(b"five", b"5"),
        "text",
        codecs.BOM_UTF8 + b"1\ntwo\nthree\nfour\n5\n",
    ),
    (
        "BOM added on one side",
        B,
        codecs.BOM_UTF8 + B,
        B.replace(b"five", b"5"),
        "text",
        codecs.BOM_UTF8 + b"one\ntwo\nthree\nfour\n5\n",
    ),
    (
        "UTF-16 with BOM",
        "é\nb\nc\nd\n".encode("utf-16"),
        "É\nb\nc\nd\n".encode("utf-16"),
        "é\nb\nc\nD\n".encode("utf-16"),
        "text",
        "É\nb\nc\nD\n".encode("utf-16"),
    ),
    (
        "declared latin-1 on all three",
        b"# coding: latin-1\n\xe9\nb\nc\n",
        b"# coding: latin-1\n\xc9\nb\nc\n",
        b"# coding: latin-1\n\xe9\nb\nC\n",
        "text",
        b"# coding: latin-1\n\xc9\nb\nC\n",
    ),
    (
        "not UTF-8",
        b"\xff\xfeab\nc\nd\ne\n"[2:] + b"\xe9\n",
        b"AB\nc\nd\ne\n\xe9\n",
        b"ab\nc\nd\nE\n\xe9\n",
        "text",
        "not valid UTF-8",
    ),
    ("NUL byte", b"a\x00\nb\nc\n", b"A\x00\nb\nc\n", b"a\x00\nb\nC\n", "text", "NUL"),
    (
        "encodings differ",
        "a\nb\nc\n".encode("utf-16"),
        b"A\nb\nc\n",
        b"a\nb\nC\n",
        "text",
        "encodings",
    ),
    (
        "JSON keys apart",
        b'{"a": 1, "b": 2}',
        b'{"a": 5, "b": 2}',
        b'{"a": 1, "b": 7}',
        "json",
        b'{"a": 5, "b": 7}',
    ),
    ("JSON same key", b'{"a": 1}', b'{"a": 2}', b'{"a": 3}', "json", "key 'a'"),
    (
        "JSON nested keys",
        b'{"x": {"a": 1, "b": 2}}',
        b'{"x": {"a": 9, "b": 2}}',
        b'{"x": {"a": 1, "b": 8}}',
        "json",
        b'{"x": {"a": 9, "b": 8}}',
    ),
    (
        "JSON delete vs change",
        b'{"a": 1, "b": 2}',
        b'{"b": 2}',
        b'{"a": 3, "b": 2}',
        "json",
        "key 'a'",
    ),
    (
        "JSON arrays as a whole",
        b'{"l": [1, 2]}',
        b'{"l": [1, 2, 3]}',
        b'{"l": [0, 1, 2]}',
        "json",
        "'l'",
    ),
    ("JSON duplicate key", b'{"a": 1, "a": 2}', b'{"a": 1}', b'{"a": 2, "b": 1}', "json", "twice"),
    ("JSON invalid", b'{"a": 1', b'{"a": 2', b'{"a": 1, "b"', "json", "not valid JSON"),
    (
        "JSON 1 vs 1.0 differ",
        b'{"a": 1, "b": 0}',
        b'{"a": 1.0, "b": 0}',
        b'{"a": 1, "b": 1}',
        "json",
        b'{"a": 1.0, "b": 1}',
    ),
]


@pytest.mark.parametrize(("name", "base", "mine", "theirs", "fmt", "want"), CASES)
def test_merge_table(name: str, base: bytes, mine: bytes, theirs: bytes, fmt, want) -> None:
    result = merge_content(base, mine, theirs, fmt)
    other = merge_content(base, theirs, mine, fmt)
    if isinstance(want, bytes):
        assert isinstance(result, Merged), result
        assert result.data == want
        assert other == result  # the same bytes whichever side is "mine"
    else:
        assert isinstance(result, Refused)
        assert want in result.reason
        assert isinstance(other, Refused)


def test_over_the_limit_is_refused() -> None:
    result = merge_content(B, B.replace(b"one", b"1"), B.replace(b"five", b"5"), limit=10)
    assert isinstance(result, Refused) and "limit" in result.reason


def test_json_keys_added_at_the_end_on_both_sides_keep_the_base_style() -> None:
    base = b'{\n\t"a": 1\n}\n'
    result = merge_content(
        base, b'{\n\t"a": 1,\n\t"z": 2\n}\n', b'{\n\t"a": 1,\n\t"m": 3\n}\n', "json"
    )
    assert result == Merged(b'{\n\t"a": 1,\n\t"m": 3,\n\t"z": 2\n}\n', "json-keys")


def test_json_helpers() -> None:
    with pytest.raises(NotSure):
        parse("NaN")
    assert merge_values({"a": 1}, {"a": 1, "b": 2}, {}) == {"b": 2}
    assert dump_like({"a": [1]}, '{"a": []}') == '{"a": [1]}'


# ------------------------------------------------------------------------ properties

base_lines = st.integers(min_value=3, max_value=40).map(
    lambda n: [f"line {i} of the base\n" for i in range(n)]
)


@st.composite
def separate_edits(draw: st.DrawFn) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """A base and two sides whose edits touch disjoint line ranges with at least one
    unchanged line between any two; returns (base, mine, theirs, expected, added)."""
    base = draw(base_lines)
    cuts = sorted(draw(st.sets(st.integers(0, len(base)), min_size=2, max_size=12)))
    regions = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
    # keep an unchanged line between regions, and not two insertions at one point
    kept: list[tuple[int, int]] = []
    for start, end in regions:
        if not kept or start > kept[-1][1]:
            kept.append((start, end))
    mine, theirs, expected = list(base), list(base), list(base)
    added: list[str] = []
    for number, (start, end) in reversed(list(enumerate(kept))):
        new = [f"edit {number} line {k}\n" for k in range(draw(st.integers(0, 3)))]
        if start == end and not new:
            continue
        added += new
        side = mine if draw(st.booleans()) else theirs
        side[start:end] = new
        expected[start:end] = new
    return base, mine, theirs, expected, added


@settings(max_examples=150, deadline=None)
@given(separate_edits())
def test_non_overlapping_edits_merge_with_every_changed_line(case) -> None:
    base, mine, theirs, expected, added = case
    result = merge_content(*("".join(x).encode() for x in (base, mine, theirs)))
    assert isinstance(result, Merged), result
    assert result.data == "".join(expected).encode()
    lines = result.data.decode().splitlines(keepends=True)
    assert all(line in lines for line in added)


side_edit = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 3), st.lists(st.sampled_from("xyz"), max_size=3)),
    max_size=4,
)


def _apply(base: list[str], edits: list[tuple[int, int, list[str]]], tag: str) -> list[str]:
    out = list(base)
    for start, length, new in edits:
        start = min(start, len(out))
        out[start : start + length] = [f"{tag} {w}\n" for w in new]
    return out


@settings(max_examples=200, deadline=None)
@given(base_lines, side_edit, side_edit, st.booleans())
def test_any_edits_lose_no_version(base, edits_a, edits_b, same_tag) -> None:
    mine = _apply(base, edits_a, "m")
    theirs = _apply(base, edits_b, "m" if same_tag else "t")
    data = [("".join(x)).encode() for x in (base, mine, theirs)]
    result = merge_content(*data)
    assert result == merge_content(data[0], data[2], data[1])
    if isinstance(result, Refused):
        return  # the sync keeps both versions: the file and a conflicted copy
    lines = result.data.decode().splitlines(keepends=True)
    for side in (mine, theirs):
        assert all(line in lines for line in side if line not in base)
