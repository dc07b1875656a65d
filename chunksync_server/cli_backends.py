"""``serve`` flags that pick the storage engines: ``--db``, ``--store``, ``--named-store``.

The default stays the embedded pair (SQLite ``DATA/meta.db`` and the pack store in
``DATA/objects``). For several stateless servers: ``--db postgresql://USER@HOST/DB``
and ``--store s3://BUCKET[/PREFIX]?endpoint=URL``. Secrets never go on the command
line (where ``ps`` and logs show them): a URL carrying a password is refused; libpq
reads ``PGPASSWORD`` or ``PGPASSFILE``, botocore ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` or ``AWS_SHARED_CREDENTIALS_FILE``. Both locations may come
from ``$CHUNKSYNC_SERVER_DB`` / ``$CHUNKSYNC_SERVER_STORE`` instead, which the admin
commands read too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from chunksync.errors import ConfigError

from .config import DB_ENV, STORE_ENV
from .pgdb import is_pg_url

__all__ = ["backend_config", "backend_options"]

F = TypeVar("F", bound=Callable[..., Any])


def backend_options(fn: F) -> F:
    fn = click.option(
        "--named-store",
        "named_stores",
        multiple=True,
        metavar="NAME=LOCATION",
        help="a store folders can be pinned to (data residency; repeatable)",
    )(fn)
    fn = click.option(
        "--store",
        "store_url",
        envvar=STORE_ENV,
        metavar="LOCATION",
        help=f"object store: s3://BUCKET[/PREFIX]?endpoint=URL (or ${STORE_ENV}); "
        "default: the pack store in the data directory",
    )(fn)
    return click.option(
        "--db",
        "db_url",
        envvar=DB_ENV,
        metavar="URL",
        help=f"metadata database: postgresql://USER@HOST/DB (or ${DB_ENV}); "
        "default: DATA/meta.db (SQLite)",
    )(fn)


def _no_password(url: str, what: str, where: str) -> None:
    if urlsplit(url).password:
        raise ConfigError(f"{what} URL carries a password: put it in {where} instead")


def backend_config(
    db_url: str | None, store_url: str | None, named_stores: tuple[str, ...]
) -> dict[str, Any]:
    """ServerConfig fields from the flags, refusing secrets and malformed values."""
    if db_url is not None:
        if not is_pg_url(db_url):
            raise ConfigError("--db: expected a postgresql:// URL")
        _no_password(db_url, "--db", "PGPASSWORD or PGPASSFILE")
    named: list[tuple[str, str]] = []
    for spec in named_stores:
        name, sep, location = spec.partition("=")
        if not sep or not name or not location:
            raise ConfigError(f"--named-store {spec!r}: expected NAME=LOCATION")
        named.append((name, location))
    for location in [store_url or "", *(loc for _, loc in named)]:
        if location.startswith("s3://"):
            _no_password(location, "S3 store", "AWS_* variables or a credentials file")
    return {"db_url": db_url, "store_url": store_url, "named_stores": tuple(named)}
