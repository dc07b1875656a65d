"""The metadata database's format version (``PRAGMA user_version``) and the refusals
when it is not the one this program reads.

``serve`` and the admin commands never upgrade a database themselves: an older one
raises :class:`SchemaOutdated`, naming ``chunksync-server migrate`` (which backs up
first, :mod:`chunksync_server.migrate`); a newer one raises :class:`SchemaTooNew`, so an
older program never misreads a newer format. The migrations themselves are
:data:`chunksync_server.db.MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chunksync.errors import ConfigError

__all__ = [
    "SchemaOutdated",
    "SchemaTooNew",
    "has_tables",
    "require_current",
    "schema_version",
]


class SchemaOutdated(ConfigError):
    """The database is older than this program: ``chunksync-server migrate`` upgrades it."""


class SchemaTooNew(ConfigError):
    """The database was upgraded by a newer program: this one would misread it."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone() is not None


def require_current(version: int, current: int, path: Path) -> None:
    """Refuse a schema this program would misread, with what to do about it."""
    if version > current:
        raise SchemaTooNew(
            f"metadata schema v{version} in {path} is newer than this server "
            f"(v{current}): run the newer chunksync-server, or go back with "
            "'chunksync-server migrate --rollback'"
        )
    if version < current:
        raise SchemaOutdated(
            f"metadata schema v{version} in {path} is older than this server "
            f"(v{current}): run 'chunksync-server migrate --data {path.parent}' "
            "(it backs up first)"
        )
