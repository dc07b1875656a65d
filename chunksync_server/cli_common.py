"""Pieces every ``chunksync-server`` command module shares: the ``--data`` and ``--json``
options, the one-line failure, and row output.

They live apart from :mod:`chunksync_server.__main__` so that command modules
(``admin_users``, ``admin_folders``, ``migrate`` …) can import them without importing the
entry point, which ``python -m chunksync_server`` loads a second time as ``__main__``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import click

from chunksync.errors import ChunksyncError

from .config import DATA_ENV

PASSWORD_ENV = "CHUNKSYNC_PASSWORD"  # nosec B105  # an env variable name

__all__ = [
    "data_option",
    "emit",
    "fail",
    "friendly",
    "json_option",
    "read_password",
    "version",
    "when",
]

F = TypeVar("F", bound=Callable[..., Any])

data_option = click.option(
    "--data",
    "data_dir",
    envvar=DATA_ENV,
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help=f"data directory (or ${DATA_ENV})",
)
json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable output")
yes_option = click.option(
    "--yes", is_flag=True, help="do it without asking (required when stdin is not a terminal)"
)


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    try:
        return metadata.version("chunksync")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def fail(message: str, code: int) -> None:
    click.echo(f"chunksync-server: {message.splitlines()[0] if message else 'error'}", err=True)
    raise SystemExit(code)


def friendly(fn: F) -> F:
    """Turn ChunksyncError into a one-line message and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ChunksyncError as exc:
            fail(exc.message, exc.exit_code)
        except OSError as exc:
            fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 1)

    return wrapper  # type: ignore[return-value]


def emit(rows: Any, as_json: bool, line: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
    else:
        for row in rows:
            click.echo(line(row))


def when(t: float | None) -> str:
    if not t:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def confirm(yes: bool, question: str) -> None:
    """Go on if ``--yes`` was given or a person at a terminal says yes; else UserError."""
    import sys

    from chunksync.errors import UserError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UserError(f"{question}: refused without --yes (stdin is not a terminal)")
    if not click.confirm(question, default=False):
        raise UserError("cancelled: nothing changed")


def read_password(password_file: Path | None) -> str:
    """From ``--password-file``, else ``$CHUNKSYNC_PASSWORD``, else a prompt (twice)."""
    import os
    import sys

    from chunksync.errors import UserError

    if password_file is not None:
        return password_file.read_text().rstrip("\r\n")
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise UserError(f"no password: use --password-file or ${PASSWORD_ENV}")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
