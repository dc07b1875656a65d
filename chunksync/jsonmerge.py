"""Key-by-key three-way merge of JSON documents: pure functions, no I/O.

Two devices that change *different keys* of one JSON object (a settings file, say)
can both be kept. :func:`merge_values` merges objects key by key, recursively; any
other value (an array, a string, a number) is merged as a whole: taken from the side
that changed it, refused when both changed it differently. A key deleted on one side
and changed on the other is refused too. :func:`parse` refuses duplicate keys, since
which one counts differs between readers.

:func:`dump_like` writes a merged document in the base's style (indentation, final
line break); keys keep the base's order, keys new on either side follow in sorted
order, so the output does not depend on which side is which.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["NotSure", "dump_like", "merge_values", "parse", "same"]

_MISSING = object()
_INDENT = re.compile(r"\n([ \t]+)\S")


class NotSure(Exception):
    """The documents cannot be merged with certainty; the message says why."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise NotSure(f"the JSON has the key {key!r} twice")
        out[key] = value
    return out


def _no_constants(name: str) -> float:
    raise NotSure(f"the JSON holds {name}, which is not standard JSON")


def parse(text: str) -> Any:
    """Parse strict JSON; raises :class:`NotSure` for invalid or ambiguous input."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except ValueError as exc:  # JSONDecodeError, and RecursionError is not caught on purpose
        raise NotSure("one version is not valid JSON") from exc
    except RecursionError:
        raise NotSure("the JSON is nested too deeply to merge") from None


def same(a: Any, b: Any) -> bool:
    """Equal as JSON, and told apart where Python would not (``1``, ``1.0``, ``true``);
    a key's absence (``_MISSING``) equals only itself."""
    if a is _MISSING or b is _MISSING:
        return a is b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def merge_values(base: Any, mine: Any, theirs: Any, where: str = "") -> Any:
    """The merged value, or :class:`NotSure`. Symmetric in ``mine`` and ``theirs``."""
    if same(mine, theirs) or same(theirs, base):
        return mine
    if same(mine, base):
        return theirs
    if not all(isinstance(v, dict) for v in (base, mine, theirs)):
        what = f"the key {where!r}" if where else "the document"
        raise NotSure(f"both sides changed {what} differently")
    out: dict[str, Any] = {}
    new = sorted((mine.keys() | theirs.keys()) - base.keys())
    for key in [*base, *new]:
        path = f"{where}.{key}" if where else key
        value = merge_values(
            base.get(key, _MISSING), mine.get(key, _MISSING), theirs.get(key, _MISSING), path
        )
        if value is not _MISSING:
            out[key] = value
    return out


def dump_like(value: Any, base_text: str) -> str:
    """``value`` as JSON in the style of ``base_text`` (its indent and final newline)."""
    found = _INDENT.search(base_text)
    indent: str | int | None = None
    if found is not None:
        first = found.group(1)
        indent = first if "\t" in first else len(first)
    elif "\n" in base_text.strip():
        indent = 0
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    eol = "\r\n" if "\r\n" in base_text else "\n"
    if eol != "\n":
        text = text.replace("\n", eol)
    return text + (eol if base_text.endswith(("\n", "\r")) else "")
