"""PostgreSQL metadata: a connection that speaks the sqlite3 API the queries are written to.

Every query module (:mod:`.db`, :mod:`.auth`, :mod:`.audit`, :mod:`.quota`, …) takes a
connection and calls ``conn.execute(sql, params)``. :class:`PgConnection` gives them
exactly that surface over psycopg 3, translating the SQL with :mod:`.sqldialect`, so
the same functions run on both engines and a new query needs no PostgreSQL copy.

Semantics kept from SQLite, and why:

* **One writer at a time.** ``BEGIN IMMEDIATE`` becomes ``BEGIN`` plus a transaction
  advisory lock: read-modify-write code (the audit hash chain, key-slot limits) was
  written for SQLite's serialized writers and stays correct across any number of
  server processes. Readers never wait for it. The head compare-and-swap itself is a
  single conditional ``UPDATE`` (:func:`chunksync_server.db.cas_head`), correct even
  without the lock.
* **sqlite3 exceptions.** psycopg errors are re-raised as the matching
  :mod:`sqlite3` exception (``IntegrityError``, ``OperationalError``, else
  ``DatabaseError``), so every ``except sqlite3.…`` in the server applies unchanged.
  Each ``INSERT`` inside a transaction runs under a savepoint, so a caught constraint
  violation leaves the transaction usable, as it does in SQLite.
* **lastrowid.** An ``INSERT`` into a table with an ``id INTEGER PRIMARY KEY`` gets
  ``RETURNING id`` appended and reports it as ``cursor.lastrowid``.
* **Head events.** :meth:`PgConnection.notify` queues a ``NOTIFY``; PostgreSQL
  delivers it to every listening server at commit, never for a rolled-back write.

Credentials never appear in a URL that is logged: libpq reads the password from
``PGPASSWORD`` or the ``PGPASSFILE`` file (default ``~/.pgpass``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from chunksync.errors import ConfigError

from .sqldialect import identity_tables, split_script, translate_ddl, translate_query

__all__ = ["HEAD_CHANNEL", "PgConnection", "connect_pg", "is_pg_url"]

#: advisory lock key every metadata writer takes (an arbitrary constant: "chunksyn")
WRITE_LOCK = 0x6368756E6B73796E & 0x7FFFFFFFFFFFFFFF
#: the NOTIFY channel carrying head moves between server processes
HEAD_CHANNEL = "chunksync_heads"
_CREATE_VERSION = "CREATE TABLE IF NOT EXISTS chunksync_schema (version INTEGER NOT NULL)"
_SELECT_VERSION = "SELECT version FROM chunksync_schema"
_INSERT_VERSION = "INSERT INTO chunksync_schema (version) VALUES (0)"
_UPDATE_VERSION = "UPDATE chunksync_schema SET version = %s"


def is_pg_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def _sqlite_error(exc: Exception) -> sqlite3.Error:
    import psycopg

    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.errors.IntegrityError):
        return sqlite3.IntegrityError(message)
    if isinstance(exc, psycopg.OperationalError):
        return sqlite3.OperationalError(message)
    return sqlite3.DatabaseError(message)


class _Cursor:
    """The part of ``sqlite3.Cursor`` the queries use."""

    __slots__ = ("_rows", "lastrowid", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


def _plain(value: Any) -> Any:
    """``sum()`` over integers is NUMERIC in PostgreSQL: give back the int SQLite gives."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


class PgConnection:
    """A sqlite3-like connection over psycopg (autocommit; explicit BEGIN/COMMIT)."""

    def __init__(self, url: str, identity: frozenset[str]) -> None:
        import psycopg

        self.url = url
        self._identity = identity
        self._tx = False
        self._savepoints = 0
        self.total_changes = 0
        try:
            self._pg = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to PostgreSQL: {_sqlite_error(exc)}") from exc

    @property
    def in_transaction(self) -> bool:
        return self._tx

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run PostgreSQL text; placeholders are parsed only when ``params`` is given."""
        import psycopg

        try:
            args = None if params is None else tuple(params)
            return self._pg.execute(sql, args)
        except psycopg.Error as exc:
            raise _sqlite_error(exc) from exc

    def _reconnect_if_broken(self) -> None:
        """Between transactions, replace a connection the database dropped (a restart
        or failover): the next request works again instead of failing forever."""
        import psycopg

        if not self._tx and (self._pg.broken or self._pg.closed):
            try:
                self._pg = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                raise _sqlite_error(exc) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        self._reconnect_if_broken()
        verb = sql.lstrip()[:24].upper()
        if verb.startswith("BEGIN"):
            self._run("BEGIN")
            self._tx = True
            self._run("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            return _Cursor([], -1, None)
        if verb.startswith(("COMMIT", "ROLLBACK", "END")):
            self._tx = False
            self._run("ROLLBACK" if verb.startswith("ROLLBACK") else "COMMIT")
            return _Cursor([], -1, None)
        text = translate_query(sql)
        insert = verb.startswith("INSERT")
        table = text.split()[2].split("(")[0].lower() if insert else ""
        returning = insert and table in self._identity and "RETURNING" not in text.upper()
        if returning:
            text += " RETURNING id"
        guard = insert and self._tx
        if guard:
            self._savepoints += 1
            self._run(f"SAVEPOINT s{self._savepoints}")
        try:
            cur = self._run(text, tuple(params))
        except sqlite3.Error:
            if guard:
                self._run(f"ROLLBACK TO SAVEPOINT s{self._savepoints}")
            raise
        finally:
            if guard:
                self._savepoints -= 1
        rows = [tuple(_plain(v) for v in row) for row in cur.fetchall()] if cur.description else []
        lastrowid = int(rows.pop()[0]) if returning and rows else None
        if verb.startswith(("INSERT", "UPDATE", "DELETE")) and cur.rowcount > 0:
            self.total_changes += cur.rowcount
        return _Cursor(rows, cur.rowcount, lastrowid)

    def notify(self, channel: str, payload: str) -> None:
        """Queue a NOTIFY; delivered to listeners when the transaction commits."""
        self._run("SELECT pg_notify(%s, %s)", (channel, payload))

    def close(self) -> None:
        self._pg.close()


def connect_pg(url: str, migrations: tuple[str, ...]) -> PgConnection:
    """Connect and bring the schema up to date (each migration in one transaction)."""
    conn = PgConnection(url, identity_tables(migrations))
    try:
        _migrate(conn, migrations)
    except sqlite3.Error as exc:
        conn.close()
        raise ConfigError(f"cannot migrate the PostgreSQL metadata database: {exc}") from exc
    return conn


def _migrate(conn: PgConnection, migrations: tuple[str, ...]) -> None:
    conn.execute("BEGIN IMMEDIATE")  # the writer lock also serializes migrating servers
    try:
        conn._run(_CREATE_VERSION)
        cur = conn._run(_SELECT_VERSION)
        row = cur.fetchone()
        if row is None:
            conn._run(_INSERT_VERSION)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    version = int(row[0]) if row else 0
    if version > len(migrations):
        raise ConfigError(
            f"metadata schema v{version} is newer than this server (v{len(migrations)})"
        )
    for number in range(version, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn._run(_SELECT_VERSION).fetchone()[0]
            if current == number:
                for statement in split_script(migrations[number]):
                    for pg_statement in translate_ddl(statement):
                        conn._run(pg_statement)
                conn._run(_UPDATE_VERSION, (number + 1,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
