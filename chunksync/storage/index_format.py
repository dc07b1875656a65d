"""The format version of a folder's index, so that an upgrade or a downgrade of
chunksync never misreads one.

The version is the ``format`` key of the ``meta`` database. At open
(:func:`check_format`):

* a new, empty index is stamped with :data:`INDEX_FORMAT`;
* an index without the key was written before versions were kept (format 0, the same
  records as format 1): it is stamped, and the upgrade said in one warning line;
* an older format with a migration in :data:`MIGRATIONS` is migrated in one write
  transaction (all or nothing), and said so; one without a migration is rebuilt (the
  index is a cache: moved aside, refilled by the next sync, nothing lost), and said so;
* a newer format than this program knows is refused with a clear message: an older
  chunksync must not guess at records it does not understand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .index import Index
    from .writer import IndexWriter

__all__ = ["FORMAT_KEY", "INDEX_FORMAT", "MIGRATIONS", "check_format", "read_format"]

log = logging.getLogger(__name__)

FORMAT_KEY = "format"
#: the index format this version writes and reads
INDEX_FORMAT = 1
#: MIGRATIONS[n] turns format n into n + 1 inside one write transaction
MIGRATIONS: dict[int, Callable[[IndexWriter], None]] = {
    0: lambda _w: None,  # format 0 (no version key) has the records of format 1
}


class NewerIndex(ConfigError):
    """The index was written by a newer chunksync."""


def _version(index: Index) -> int | None:
    raw = index.get_meta(FORMAT_KEY)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return -1


def check_format(index: Index) -> bool:
    """Stamp, migrate or refuse (see the module docstring); True when the caller must
    rebuild the index (an old format without a migration)."""
    found = _version(index)
    if found == INDEX_FORMAT:
        return False
    if found is None and index.is_empty():
        stamp(index)
        return False
    version = 0 if found is None else found
    if version > INDEX_FORMAT:
        raise NewerIndex(
            f"the index at {index.path} has format {version}, written by a newer chunksync "
            f"(this one reads format {INDEX_FORMAT}): upgrade chunksync, or move "
            f"{index.path} away to have this version rebuild it"
        )
    steps = list(range(version, INDEX_FORMAT))
    if version < 0 or any(step not in MIGRATIONS for step in steps):
        return True
    with index.write() as w:
        for step in steps:
            MIGRATIONS[step](w)
        w.set_meta(FORMAT_KEY, str(INDEX_FORMAT).encode())
    log.warning("index at %s upgraded from format %d to %d", index.path, version, INDEX_FORMAT)
    return False


def stamp(index: Index) -> None:
    with index.write() as w:
        w.set_meta(FORMAT_KEY, str(INDEX_FORMAT).encode())


def read_format(path: Path) -> int | None:
    """The format of the index at ``path`` (for ``doctor``); None if it has none."""
    from .index import Index

    with Index.open(path) as index:
        return _version(index)
