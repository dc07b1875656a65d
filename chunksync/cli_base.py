"""What every ``chunksync`` command shares: error handling, ``--json`` output, the
folder argument (defaulting to the folder around the current directory), secrets
from a file, the environment or a prompt, and running a coroutine interruptibly.

Kept apart from :mod:`chunksync.cli` so each ``cli_<area>`` module can import these
without importing cli.py (which imports them to register their commands).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import ChunksyncError, UserError
from .fsops import STATE_DIR_NAME
from .interrupt import interrupted, run_interruptible, say_interrupted, signals_handled
from .output import say, to_json

__all__ = [
    "FOLDER_DIR",
    "command_errors",
    "emit",
    "find_folder",
    "folder_and_rest",
    "read_secret",
    "run",
    "with_progress",
]

T = TypeVar("T")


def is_folder(path: Path) -> bool:
    return (path / STATE_DIR_NAME / "config.json").is_file()


def find_folder(start: Path | None = None) -> Path:
    """The synced folder containing ``start`` (default: the current directory)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if is_folder(candidate):
            return candidate
    raise UserError(
        f"{here} is not inside a synced folder: give the folder's directory "
        "(or cd into it), or set one up with 'chunksync init' or 'chunksync join'"
    )


def _default_folder(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path:
    if value is not None:
        return value
    try:
        return find_folder()
    except UserError as exc:  # parsing happens before command_errors takes over
        raise click.UsageError(exc.message) from None


#: the optional DIR argument: the folder containing the current directory when omitted
FOLDER_DIR = click.argument(
    "directory",
    required=False,
    callback=_default_folder,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)


def folder_and_rest(args: Sequence[str]) -> tuple[Path, list[str]]:
    """``[DIR] PATH...``: the first argument is the folder when it is one, else the
    folder around the current directory is, and every argument is a path in it."""
    if args and is_folder(Path(args[0])):
        return Path(args[0]), list(args[1:])
    return find_folder(), list(args)


def read_secret(file: str | None, env: str, prompt: str, *, confirm: bool = False) -> str:
    """A secret from ``--*-file``, then the environment, then an interactive prompt."""
    if file:
        try:
            return Path(file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise UserError(f"cannot read {file}: {exc.strerror}") from exc
    if os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        raise UserError(f"no {prompt.lower()} given: use the file option or set {env}")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


def run(coro: Awaitable[T]) -> T:
    """asyncio.run that the first ^C/SIGTERM stops cleanly (:mod:`.interrupt`)."""
    return run_interruptible(coro)


def _fail(message: str, code: int, as_json: bool) -> None:
    """Say why the command failed (one line, or one JSON object on stdout) and exit."""
    if as_json:
        click.echo(to_json({"error": message, "exit_code": code}))
    else:
        say(f"chunksync: {message}", err=True)
    sys.exit(code)


def command_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure into one line on stderr (with ``--json``: one object
    ``{"error", "exit_code"}`` on stdout) and a non-zero exit code.

    Chunksync errors carry their own code; an OSError names the file; anything else is
    a bug, reported in one line too unless ``CHUNKSYNC_DEBUG`` asks for the traceback.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            with signals_handled():
                return fn(*args, **kwargs)
        except ChunksyncError as exc:
            if interrupted():  # e.g. "transfers are paused": the gate closed by ^C
                say_interrupted()
                sys.exit(130)
            _fail(exc.message, exc.exit_code, as_json)
        except KeyboardInterrupt:
            say_interrupted()
            sys.exit(130)
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}", 1, as_json)
        except Exception as exc:
            if os.environ.get("CHUNKSYNC_DEBUG"):
                raise
            _fail(
                f"internal error ({type(exc).__name__}: {exc}); "
                "run again with CHUNKSYNC_DEBUG=1 for details",
                70,
                as_json,
            )

    return wrapper


def emit(doc: Any, as_json: bool, text: Callable[[], None]) -> None:
    if as_json:
        click.echo(to_json(doc))
    else:
        text()


def with_progress(go: Callable[[Any], Awaitable[T]], quiet: bool = False) -> T:
    """Run a sync or a restore, with progress bars (bytes, files, time left) on stderr
    when it is a terminal."""
    from .progress import TerminalProgress

    if quiet or not sys.stderr.isatty():
        return run(go(None))
    with TerminalProgress() as progress:
        return run(go(progress))
