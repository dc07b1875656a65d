"""Three-way merge of file content: pure functions over bytes, no I/O, no clock.

:func:`merge_content` decides whether two versions of a file that both changed since
their common base can be merged *with certainty*, and if so returns the merged bytes.
Anything it is not sure of is :class:`Refused` with a reason in plain words, and the
sync falls back to a conflicted copy (:mod:`chunksync.conflict`), so a merge never
guesses.

Text is merged line by line with ``merge3`` (the diff3 of bzr/breezy): only when the
edits of the two sides touch different lines, with at least one unchanged line between
them. Before merging, what is not "lines" is taken apart and merged as attributes, so
that it survives: the byte-order mark, the line-ending style (LF, CRLF or CR, when
each version uses one style) and whether the file ends with a line break. An
attribute changed by one side only is taken from that side; changed differently by
both, the merge is refused. A file with mixed line endings is merged with each line's
own ending kept.

JSON is first merged as text (which keeps its formatting) and the result is accepted
only if it parses to exactly what a key-by-key merge of the three objects gives
(:mod:`chunksync.jsonmerge`); when the text merge collides (two keys added at the end
of one object, say), the key-by-key merge alone decides and the file is written in the
base's indentation.

Guarantees: the result depends only on the three inputs — never on which side is
"mine" (``merge_content(b, m, t) == merge_content(b, t, m)``), on the device or the
time — so every device that merges the same versions writes the same bytes. A clean
merge holds every line either side changed or added.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Literal, TypeVar

import merge3

from . import jsonmerge

__all__ = [
    "DEFAULT_LIMIT",
    "Format",
    "Merged",
    "Refused",
    "merge3_attr",
    "merge_content",
    "merge_text",
]

DEFAULT_LIMIT = 4 << 20  # bytes; bigger files are kept as conflicted copies
Format = Literal["text", "json"]

_BOMS: tuple[tuple[bytes, str], ...] = (  # longest first: UTF-32-LE starts like UTF-16-LE
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# PEP 263 coding cookies and XML declarations, in the first two lines
_DECLARED = re.compile(rb"coding[:=][ \t]*([-\w.]+)|<\?xml[^>]*encoding=[\"']([-\w.]+)[\"']")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_EOL = re.compile(r"\r\n|\r|\n")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Merged:
    """A certain merge: ``data`` is the merged file; ``how`` says which merge made it."""

    data: bytes
    how: str


@dataclass(frozen=True, slots=True)
class Refused:
    """No certain merge; ``reason`` is shown to the user beside the conflicted copy."""

    reason: str


class _Unsure(Exception):
    """Raised inside the merge for anything ambiguous; becomes :class:`Refused`."""


def merge3_attr(base: T, mine: T, theirs: T, what: str) -> T:
    """Three-way merge of one value: the side that changed it wins; both changed it
    differently raises :class:`_Unsure`. Symmetric in ``mine`` and ``theirs``."""
    if mine == theirs or theirs == base:
        return mine
    if mine == base:
        return theirs
    raise _Unsure(f"both sides changed the {what} differently")


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class _Decoded:
    bom: bytes
    codec: str
    text: str


def _declared(data: bytes) -> tuple[bytes, str]:
    """The byte-order mark and the encoding it or a declaration names (UTF-8 if none)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return bom, codec
    head = b"\n".join(data.split(b"\n", 2)[:2])
    found = _DECLARED.search(head)
    if found is None:
        return b"", "utf-8"
    name = (found.group(1) or found.group(2)).decode("ascii")
    try:
        return b"", codecs.lookup(name).name
    except LookupError:
        raise _Unsure(f"declares an unknown encoding {name!r}") from None


def _family(codec: str) -> str:
    return codec.removesuffix("-le").removesuffix("-be") if codec.startswith("utf-") else codec


def _decode(data: bytes, codec: str, bom: bytes) -> _Decoded:
    body = data[len(bom) :]
    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        what = "UTF-8" if codec == "utf-8" else codec
        raise _Unsure(f"is not valid {what} text") from None
    if text.encode(codec) != body:  # never rewrite bytes the merge did not touch
        raise _Unsure(f"does not survive a round trip through {codec}")
    if "\x00" in text:
        raise _Unsure("contains NUL characters (binary)")
    return _Decoded(bom, codec, text)


def _decode_all(versions: tuple[bytes, bytes, bytes]) -> tuple[_Decoded, _Decoded, _Decoded]:
    declared = [_declared(v) for v in versions]
    codecs_seen = {codec for _, codec in declared}
    if len({_family(c) for c in codecs_seen}) > 1:
        raise _Unsure("the versions use different text encodings")
    if len(codecs_seen) > 1:  # UTF-16-LE vs UTF-16-BE: a byte-order change on one side
        raise _Unsure("the versions use different byte orders")
    b, m, t = (_decode(v, codec, bom) for v, (bom, codec) in zip(versions, declared, strict=True))
    return b, m, t


# ------------------------------------------------------------------------------ lines


def _style(text: str) -> str | None:
    """The one line ending ``text`` uses, None if it has none, "mixed" if several."""
    found = set(_EOL.findall(text))
    if len(found) > 1:
        return "mixed"
    return next(iter(found), None)


def _split(text: str) -> tuple[list[str], bool]:
    """Lines without their endings, and whether the text ends with a line break."""
    pieces = _EOL.split(text)
    final = len(pieces) > 1 and pieces[-1] == ""
    return (pieces[:-1] if final else pieces), final


def _merge_lines(base: list[str], mine: list[str], theirs: list[str]) -> list[str]:
    out: list[str] = []
    for group in merge3.Merge3(base, mine, theirs).merge_groups():
        if group[0] == "conflict":
            raise _Unsure("both sides changed the same lines (or lines next to each other)")
        out.extend(group[1])
    return out


def _merge_decoded(b: _Decoded, m: _Decoded, t: _Decoded) -> str:
    styles = (_style(b.text), _style(m.text), _style(t.text))
    if "mixed" in styles:  # keep every line's own ending
        lines = _merge_lines(*(_LINE.findall(x.text) for x in (b, m, t)))
        return "".join(lines)
    known = {s for s in styles if s is not None}
    eol = next(iter(known)) if len(known) == 1 else "\n"
    if len(known) > 1:
        eol = merge3_attr(*styles, "line endings") or "\n"
    (bl, bf), (ml, mf), (tl, tf) = _split(b.text), _split(m.text), _split(t.text)
    final = merge3_attr(bf, mf, tf, "final line break")
    lines = _merge_lines(bl, ml, tl)
    return eol.join(lines) + (eol if final else "")


def merge_text(base: bytes, mine: bytes, theirs: bytes) -> bytes:
    """The line-by-line merge of three text versions; raises :class:`_Unsure`."""
    b, m, t = _decode_all((base, mine, theirs))
    bom = merge3_attr(b.bom, m.bom, t.bom, "byte-order mark")
    text = _merge_decoded(b, m, t)
    return bom + text.encode(b.codec)


def _merge_json(base: bytes, mine: bytes, theirs: bytes) -> Merged:
    b, m, t = _decode_all((base, mine, theirs))
    try:
        values = [jsonmerge.parse(x.text) for x in (b, m, t)]
    except jsonmerge.NotSure as exc:
        raise _Unsure(str(exc)) from None
    try:
        structured: object = jsonmerge.merge_values(*values)
    except jsonmerge.NotSure as exc:
        raise _Unsure(str(exc)) from None
    try:
        text = merge_text(base, mine, theirs)
        if jsonmerge.same(jsonmerge.parse(text[len(b.bom) :].decode(b.codec)), structured):
            return Merged(text, "json")
    except (_Unsure, jsonmerge.NotSure):
        pass
    bom = merge3_attr(b.bom, m.bom, t.bom, "byte-order mark")
    return Merged(bom + jsonmerge.dump_like(structured, b.text).encode(b.codec), "json-keys")


def merge_content(
    base: bytes, mine: bytes, theirs: bytes, fmt: Format = "text", *, limit: int = DEFAULT_LIMIT
) -> Merged | Refused:
    """Merge two changed versions of a file against their base, or say why not."""
    biggest = max(len(base), len(mine), len(theirs))
    if biggest > limit:
        return Refused(f"the file is over the {limit // 1024} KiB automatic-merge limit")
    try:
        if fmt == "json":
            return _merge_json(base, mine, theirs)
        return Merged(merge_text(base, mine, theirs), "text")
    except _Unsure as exc:
        return Refused(str(exc))
