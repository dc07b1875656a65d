"""One SQL text for both metadata engines: SQLite's SQL translated for PostgreSQL.

Every query and migration of the server is written once, in the SQLite dialect the
server has always used (``?`` placeholders, ``INTEGER``/``REAL``/``BLOB`` columns,
``BEGIN IMMEDIATE``). Why translate instead of keeping two copies: several features are
added in parallel, each with its own queries and migrations; one text means a new
query runs on PostgreSQL with no extra work, and a new migration only has to stay
inside the small subset below. The translation is mechanical and pure (no database
needed), so it is unit-tested on its own.

Queries (:func:`translate_query`):

* ``?`` becomes ``%s`` and a literal ``%`` becomes ``%%`` (psycopg's placeholders);
* the column name ``user`` (reserved in PostgreSQL, where it means ``current_user``)
  is quoted as ``"user"``;
* ``INSERT OR IGNORE INTO`` becomes ``INSERT INTO … ON CONFLICT DO NOTHING``;
* ``PRAGMA data_version`` (changes when another connection commits) becomes the
  next transaction id; ``PRAGMA database_list`` yields no rows (no file beside the
  database: the audit chain head file is a SQLite-only anchor).

Migrations (:func:`translate_ddl`) additionally map ``id INTEGER PRIMARY KEY`` to an
identity column, ``INTEGER`` to ``BIGINT``, ``REAL`` to ``DOUBLE PRECISION`` and
``BLOB`` to ``BYTEA``, and turn the append-only trigger form
``CREATE TRIGGER t BEFORE UPDATE|DELETE ON tbl BEGIN SELECT RAISE(ABORT, 'msg'); END;``
into a PL/pgSQL trigger. Anything else SQLite-only (``INSERT OR REPLACE``, other
``PRAGMA``\\ s, other trigger bodies) raises :class:`UnsupportedSQL` naming it, so
the gap shows up in the first PostgreSQL test, not in production.
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "UnsupportedSQL",
    "identity_tables",
    "split_script",
    "translate_ddl",
    "translate_query",
]


class UnsupportedSQL(ValueError):
    """SQLite SQL that has no translation for PostgreSQL (see the module doc)."""


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATA_VERSION = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
_NO_ROWS = "SELECT NULL, NULL, NULL WHERE false"
_TRIGGER = re.compile(
    r"\ACREATE\s+TRIGGER\s+(\w+)\s+BEFORE\s+(UPDATE|DELETE)\s+ON\s+(\w+)\s+"
    r"BEGIN\s+SELECT\s+RAISE\s*\(\s*ABORT\s*,\s*'([^']*)'\s*\)\s*;\s*END\s*;?\s*\Z",
    re.IGNORECASE,
)
_IDENTITY = re.compile(r"CREATE\s+TABLE\s+(\w+)\s*\(\s*id\s+INTEGER\s+PRIMARY\s+KEY\b", re.I)
_DDL_TYPES = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"}


def _rewrite(sql: str, word_map: dict[str, str], placeholders: bool) -> str:
    """Rewrite words and placeholders outside quoted literals and identifiers."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote inside
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%") if placeholders else sql[i : end + 1])
            i = end + 1
            continue
        if ch == "?" and placeholders:
            out.append("%s")
        elif ch == "%" and placeholders:
            out.append("%%")
        elif ch.isalpha() or ch == "_":
            word = _WORD.match(sql, i)
            assert word is not None  # nosec B101  # a letter always starts a word
            text = word.group()
            follows_dot = i > 0 and sql[i - 1] == "."
            replaced = word_map.get(text.upper())
            out.append(replaced if replaced is not None and not follows_dot else text)
            i = word.end()
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def translate_query(sql: str) -> str:
    """A SQLite query or DML statement as PostgreSQL text for psycopg (``%s`` params)."""
    text = sql.strip().rstrip(";").strip()
    upper = " ".join(text.split()).upper()
    if upper.startswith("PRAGMA"):
        if upper == "PRAGMA DATA_VERSION":
            return _DATA_VERSION
        if upper == "PRAGMA DATABASE_LIST":
            return _NO_ROWS
        raise UnsupportedSQL(f"no PostgreSQL translation for {text[:60]!r}")
    if upper.startswith("INSERT OR REPLACE"):
        raise UnsupportedSQL("INSERT OR REPLACE: write INSERT … ON CONFLICT (…) DO UPDATE")
    ignore = upper.startswith("INSERT OR IGNORE")
    if ignore:
        text = "INSERT" + re.sub(r"\AINSERT\s+OR\s+IGNORE", "", text, flags=re.I)
    out = _rewrite(text, {"USER": '"user"'}, placeholders=True)
    return out + " ON CONFLICT DO NOTHING" if ignore else out


def split_script(script: str) -> list[str]:
    """A migration's statements, trigger bodies kept whole (same rule as SQLite's)."""
    import sqlite3

    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return [s for s in statements if s]


def translate_ddl(statement: str) -> list[str]:
    """One SQLite migration statement as the PostgreSQL statements that do the same."""
    text = statement.strip()
    trigger = _TRIGGER.match(text)
    if trigger:
        name, event, table, message = trigger.groups()
        body = message.replace("'", "''")
        return [
            f"CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{body}'; END $$",
            f"CREATE TRIGGER {name} BEFORE {event.upper()} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {name}_fn()",
        ]
    if re.match(r"\ACREATE\s+TRIGGER", text, re.I) or text.upper().startswith("PRAGMA"):
        raise UnsupportedSQL(f"no PostgreSQL translation for {text[:60]!r}")
    text = re.sub(r"\s+AUTOINCREMENT\b", "", text, flags=re.I)  # identity never reuses ids
    text = re.sub(
        r"\bid\s+INTEGER\s+PRIMARY\s+KEY\b",
        "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        text,
        flags=re.I,
    )
    text = _column_types(text)
    return [_rewrite(text.rstrip(";"), {"USER": '"user"'}, placeholders=False)]


#: words that precede a NAME, not a type (``ADD COLUMN blob BLOB``)
_BEFORE_NAME = frozenset({"COLUMN", "TABLE", "INDEX", "ON", "EXISTS", "TRIGGER", "KEY"})


def _column_types(text: str) -> str:
    """Map the type word of each column definition: the word right after the name.

    A type word in a name's position (``(blob BLOB``, ``, real REAL``, ``ADD COLUMN
    blob BLOB``) is left alone: only the word after an identifier is a type.
    """
    tokens = re.split(r"(\s+)", text)
    previous = ""
    for index, token in enumerate(tokens):
        if not token or token.isspace():
            continue
        core = token.rstrip(",);")
        before = previous.lstrip("(")
        if (
            core.upper() in _DDL_TYPES
            and not token.startswith("(")
            and re.fullmatch(r"\w+", before)
            and before.upper() not in _BEFORE_NAME
        ):
            tokens[index] = _DDL_TYPES[core.upper()] + token[len(core) :]
        previous = token
    return "".join(tokens)


def identity_tables(migrations: tuple[str, ...]) -> frozenset[str]:
    """Tables whose ``id INTEGER PRIMARY KEY`` SQLite fills in (``cursor.lastrowid``)."""
    return frozenset(m.group(1) for script in migrations for m in _IDENTITY.finditer(script))
