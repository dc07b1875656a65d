"""What counts as damage in an opened index, and moving a damaged index aside.

LMDB reports a file it cannot use at all when it is opened (:data:`UNUSABLE`); an index
that opens fine can still fail later, in a read or a write, with a corrupted page or a
record that does not decode (:data:`DAMAGE`). Other LMDB errors — a full disk, too
many readers, a full map (grown by the index itself) — are not damage, and rebuilding
would not help, so they are not caught as such.

A process that finds damage leaves ``index.damaged`` beside the index directory,
holding its pid. The process that holds the index open rebuilds it itself; another
process honours the mark only once that one is gone, because moving an index aside
under an open LMDB environment would lose that process's writes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import time
from pathlib import Path

import lmdb

from .records import RecordDamaged

__all__ = ["DAMAGE", "DAMAGED_MARK", "UNUSABLE", "mark_path", "marked_by_other", "move_aside"]

#: what LMDB raises at open for a file it cannot use at all
UNUSABLE = (
    lmdb.InvalidError,
    lmdb.CorruptedError,
    lmdb.VersionMismatchError,
    lmdb.BadRslotError,
    lmdb.PageNotFoundError,
)
#: what a read or write of an opened index raises when what is on disk is damaged
DAMAGE = (
    *UNUSABLE,
    lmdb.PanicError,
    lmdb.IncompatibleError,
    lmdb.BadTxnError,
    lmdb.BadChecksumError,
    lmdb.ProblemError,
    RecordDamaged,
    struct.error,
    UnicodeError,
)
DAMAGED_MARK = ".damaged"  # "index.damaged", beside the index directory: the marker's pid


def mark_path(path: Path) -> Path:
    return path.with_name(path.name + DAMAGED_MARK)


def marked_by_other(path: Path) -> bool:
    """Whether the index is marked damaged by another live process (that one rebuilds
    it: moving it aside under an open environment would lose that process's writes)."""
    try:
        pid = int(mark_path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid in (0, os.getpid()):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def move_aside(path: Path) -> str:
    """Move the index directory to ``index.broken-<time>`` (the newest one kept)."""
    aside = path.with_name(f"{path.name}.broken-{int(time.time())}")
    for old in path.parent.glob(f"{path.name}.broken-*"):
        shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, aside)
    with contextlib.suppress(FileNotFoundError):
        mark_path(path).unlink()
    return aside.name
