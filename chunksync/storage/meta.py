"""The keys of the index's ``meta`` database and the shape each value must have.

The sync engine keeps the device's own small state under these keys. Reading one back
checks its shape (:func:`meta_problem`), so a garbled value — random bytes, a cut-short
id, a number that is not one — is reported as a damaged index (and the index rebuilt)
instead of being trusted: a garbage ``base`` taken at its word would make every server
head look like a fork, and a garbage ``high_seq`` would crash every sync.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..objects import ID_SIZE

__all__ = [
    "BASE",
    "BASE_ROOT",
    "BASE_SERVER_SEQ",
    "CHECKED_EPOCH",
    "FORMAT",
    "HIGH_SEQ",
    "IGNORED_BY",
    "LOCAL_ROOT",
    "PENDING",
    "ROLE",
    "SCAN_IGNORE_DIGEST",
    "meta_problem",
]

BASE = "base"  # commit id (hex) this device last synced
BASE_ROOT = "base_root"  # root tree id (raw) of that commit
LOCAL_ROOT = "local_root"  # root tree id of the disk as last seen (journal diffing)
PENDING = "pending"  # b"1" while local changes wait for a sync
HIGH_SEQ = "high_seq"  # sequence number of the base commit (rollback guard)
BASE_SERVER_SEQ = "base_server_seq"  # the server's head-log position of the base
CHECKED_EPOCH = "checked_epoch"  # storage epoch under which the head's objects were checked
ROLE = "role"  # this account's role in the folder, as last asked
IGNORED_BY = "ignored_by"  # the ignore rules of the last synced round (see sync/unignore.py)
SCAN_IGNORE_DIGEST = "scan.ignore_digest"  # the ignore rules of the last scan (scanner.py)
FORMAT = "format"  # the index format version (index_format.py)

_HEX_ID = re.compile(rb"[0-9a-f]{%d}" % (2 * ID_SIZE))
_NUMBER = re.compile(rb"[0-9]{1,19}")
_WORD = re.compile(rb"[0-9a-z.]{0,80}")


def _text(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_SHAPES: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    BASE: ("a hex commit id", lambda v: _HEX_ID.fullmatch(v) is not None),
    BASE_ROOT: ("a tree id", lambda v: len(v) == ID_SIZE),
    LOCAL_ROOT: ("a tree id", lambda v: len(v) == ID_SIZE),
    PENDING: ("0 or 1", lambda v: v in (b"0", b"1")),
    HIGH_SEQ: ("a number", lambda v: _NUMBER.fullmatch(v) is not None),
    BASE_SERVER_SEQ: ("a number", lambda v: _NUMBER.fullmatch(v) is not None),
    CHECKED_EPOCH: ("a short word", lambda v: _WORD.fullmatch(v) is not None),
    ROLE: ("a role", lambda v: v in (b"", b"owner", b"read-write", b"read-only")),
    IGNORED_BY: ("text", _text),
    SCAN_IGNORE_DIGEST: ("a digest", lambda v: len(v) == 32),
    FORMAT: ("a number", lambda v: _NUMBER.fullmatch(v) is not None),
}


def meta_problem(key: str, value: bytes) -> str | None:
    """Why ``value`` cannot be the value of ``key``, or None when it can (or the key
    has no fixed shape)."""
    shape = _SHAPES.get(key)
    if shape is None or shape[1](value):
        return None
    return f"meta {key!r} is not {shape[0]}"
