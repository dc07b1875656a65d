"""Hypothesis strategies and the one assertion shared by the parser fuzz tests.

:func:`only_project_errors` is the property: a decoder fed anything a hostile server
can send either returns or raises a :class:`~chunksync.errors.ChunksyncError`; any
other exception (IndexError, KeyError, struct.error, UnicodeDecodeError, ValueError,
RecursionError, OverflowError...) escapes and fails the test with its traceback.
:func:`mutations` turns one valid encoding into the near-misses that find bugs faster
than random bytes: a flipped bit, a cut, an insertion, a splice of two valid blobs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from chunksync.errors import ChunksyncError

__all__ = ["FUZZ", "json_values", "mutations", "only_project_errors", "wild_json"]

#: bounded and reproducible in CI: derandomized, no deadline on a loaded machine
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def only_project_errors(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args)``, with a project error (the allowed outcome) turned into None."""
    try:
        return fn(*args, **kwargs)
    except ChunksyncError as exc:
        assert exc.message and "\n" not in exc.message.strip(), repr(exc.message)
        return None


#: JSON scalars including the awkward ones: huge ints, floats, non-ASCII and lone surrogates
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80)
    | st.sampled_from(
        [
            "",
            "0" * 64,
            "ab" * 32,
            "AB" * 32,
            "file",
            "dir",
            "symlink",
            "tree",
            "commit",
            "head",
            "hello",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=12,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


#: bytes a server could send as a JSON body: valid JSON of any shape, deep nesting, junk
wild_json = (
    json_values.map(_dumps)
    | st.integers(1, 100_000).map(lambda n: b"[" * n)
    | st.sampled_from(
        [
            b"1e400",
            b"-1e400",
            b"NaN",
            b"Infinity",
            b"9" * 5000,
            b'"\\ud800"',
            b"\xff\xfe",
            b'{"a":' * 3000,
        ]
    )
    | st.binary(max_size=200)
)


@st.composite
def mutations(draw: st.DrawFn, valid: bytes, others: tuple[bytes, ...] = ()) -> bytes:
    """A near-miss of ``valid``: a bit flipped, bytes cut, inserted, or spliced in."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "set", "splice"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if how == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            data = data[:pos] + data[pos + draw(st.integers(1, 16)) :]
        elif how == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif how == "set" and data:
            data[pos] = draw(st.sampled_from([0, 0x7F, 0x80, 0xFF]))
        elif how == "splice" and others:
            other = draw(st.sampled_from(others))
            data = data[:pos] + other[pos:]
    return bytes(data)
