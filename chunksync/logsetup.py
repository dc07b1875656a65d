"""One structured logging setup for the daemon (``chunksync daemon``) and the server
(``chunksync-server serve``), built on ``structlog`` over the standard ``logging``
module.

Every line, whether an event the program emits on purpose (the daemon's ``synced``,
the server's access log) or a warning from any library through ``logging``, goes
through the same processors and one handler:

* ``json`` — one JSON object per line with ``time`` (epoch seconds), ``level``,
  ``logger``, ``event`` and the event's fields; ASCII only (``ensure_ascii``), so an
  odd file name can never forge a line (see :mod:`chunksync.output`);
* ``human`` — ``chunksync: LOGGER: EVENT key=value ...``, escaped as a whole by
  :func:`chunksync.paths.display` like every other line shown to a person;
* ``auto`` (the default) — ``human`` on a terminal, ``json`` otherwise (a pipe, a
  file, the systemd journal).

**No secret in a log line.** :func:`redact` replaces the value of every field whose
name says it holds a secret (token, password, passphrase, secret, key, authorization,
totp) and any ``Bearer …`` credential inside a message, before rendering.

The destination is stderr (under systemd: the journal) unless ``--log-file FILE`` is
given; ``--log-file platform`` picks the platform's log directory
(``platformdirs.user_log_path``). The file is reopened when rotated away
(``WatchedFileHandler``, for logrotate).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from .paths import display

__all__ = [
    "LEVELS",
    "LogSettings",
    "configure",
    "configured",
    "emit",
    "log_options",
    "platform_log_file",
    "redact",
    "render",
    "session",
]

OWN_LOGGERS = ("chunksync", "chunksync_server")
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("auto", "json", "human")
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(token|password|passphrase|secret|authorization|totp|cookie|(^|_)keys?$)", re.IGNORECASE
)
_BEARER = re.compile(r"(Bearer\s+)[^\s\"',;]+", re.IGNORECASE)
F = TypeVar("F", bound=Callable[..., Any])
EventDict = MutableMapping[str, Any]


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    fmt: str = "auto"
    file: Path | None = None


def redact(_logger: object, _name: str, event: EventDict) -> EventDict:
    """structlog processor: blank secret-named fields and bearer credentials."""
    for key in list(event):
        if key != "event" and _SECRET_KEY.search(key):
            event[key] = REDACTED
        elif isinstance(event[key], str) and "bearer" in event[key].lower():
            event[key] = _BEARER.sub(r"\1" + REDACTED, event[key])
    return event


def _add_time(_logger: object, _name: str, event: EventDict) -> EventDict:
    event.setdefault("time", round(time.time(), 3))
    return event


def _json_line(_logger: object, _name: str, event: EventDict) -> str:
    return json.dumps(event, sort_keys=True, default=str, ensure_ascii=True)


def _human_line(_logger: object, _name: str, event: EventDict) -> str:
    event = dict(event)
    event.pop("time", None)
    level = event.pop("level", "info")
    logger = event.pop("logger", None)
    message = str(event.pop("event", ""))
    exc = event.pop("exception", None)
    fields = " ".join(f"{k}={v}" for k, v in sorted(event.items()))
    head = f"chunksync: {logger}: " if logger else "chunksync: "
    prefix = f"{level}: " if level not in ("info",) else ""
    text = head + prefix + message + (f" {fields}" if fields else "")
    if exc:
        text += f" {exc}"
    return display(text)  # one line, control characters escaped


def _pre_chain() -> list[Any]:
    """The processors every record goes through, ours and the standard library's."""
    import structlog  # here, not at import: the CLI's start-up stays light

    return [
        structlog.stdlib.ExtraAdder(),  # a stdlib record's ``extra=`` fields
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_time,
        structlog.processors.format_exc_info,
        redact,
    ]


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def render(doc: dict[str, Any], *, human: bool = False) -> str:
    """One event as a log line, the way the configured handler would (no handler
    needed: for streams a caller owns, e.g. a test's)."""
    event = redact(None, "", dict(doc))
    event.setdefault("time", round(time.time(), 3))
    return (_human_line if human else _json_line)(None, "", event)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the ``sys.stderr`` of the moment (a test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


_HANDLER_ATTR = "_chunksync_logsetup"


def platform_log_file(app: str) -> Path:
    import platformdirs

    return platformdirs.user_log_path(app, appauthor=False, ensure_exists=True) / f"{app}.log"


def configure(settings: LogSettings = LogSettings(), *, app: str = "chunksync") -> None:
    """Install the one handler on the root logger (replacing an earlier one of ours)."""
    import structlog

    level = getattr(logging, settings.level.upper())
    if settings.file is not None:
        path = platform_log_file(app) if str(settings.file) == "platform" else settings.file
        handler: logging.Handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
        human = settings.fmt == "human"
    else:
        handler = _CurrentStderr()
        human = settings.fmt == "human" or (settings.fmt == "auto" and _is_tty(sys.stderr))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _human_line if human else _json_line,
            ],
            foreign_pre_chain=_pre_chain(),
        )
    )
    setattr(handler, _HANDLER_ATTR, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if _ours(h)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    # our own loggers at the level asked for; libraries' chatter only from warnings up
    root.setLevel(level if level == logging.DEBUG else max(level, logging.WARNING))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_pre_chain(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


@contextmanager
def session(settings: LogSettings, *, app: str = "chunksync") -> Iterator[None]:
    """:func:`configure` for the length of a command; then the handlers and levels that
    were there before come back (a test runner calls several commands in one process)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, [logging.getLogger(n).level for n in OWN_LOGGERS])
    configure(settings, app=app)
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if getattr(h, _HANDLER_ATTR, False)]:
            handler.close()
        root.handlers[:] = saved[0]  # the same handlers in the same order
        root.setLevel(saved[1])
        for name, level in zip(OWN_LOGGERS, saved[2]):
            logging.getLogger(name).setLevel(level)


def _ours(handler: logging.Handler) -> bool:
    """This module's handler, or the CLI's plain one (chunksync.output), which it replaces
    so that no line is logged twice in two formats."""
    mine = getattr(handler, _HANDLER_ATTR, False)
    return mine or type(handler).__module__ == "chunksync.output"  # no import: kept light


def configured() -> bool:
    return any(getattr(h, _HANDLER_ATTR, False) for h in logging.getLogger().handlers)


def emit(logger: str, event: str, *, level: str = "info", **fields: Any) -> None:
    """Log one structured event through the configured handler."""
    import structlog

    getattr(structlog.get_logger(logger), level)(event, **fields)


_requested = LogSettings()


def requested() -> LogSettings:
    """What ``--log-level/--log-format/--log-file`` asked for (see :func:`log_options`)."""
    return _requested


def log_options(default_level: str = "info") -> Callable[[F], F]:
    """``--log-level``, ``--log-format`` and ``--log-file`` for a long-running command.

    They record their values for :func:`requested`; the command calls :func:`configure`
    when it starts, so a command gains them with one decorator line.
    """

    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        global _requested
        key = {"log_level": "level", "log_format": "fmt", "log_file": "file"}[str(param.name)]
        new: Any = Path(value) if key == "file" and value is not None else value
        _requested = dataclasses.replace(_requested, **{key: new})
        return value

    def decorate(fn: F) -> F:
        fn = click.option(
            "--log-file",
            metavar="FILE",
            expose_value=False,
            callback=remember,
            help="log to FILE instead of stderr ('platform': the platform's log directory)",
        )(fn)
        fn = click.option(
            "--log-format",
            type=click.Choice(FORMATS),
            default="auto",
            show_default=True,
            expose_value=False,
            callback=remember,
            help="json lines, human lines, or auto (human on a terminal)",
        )(fn)
        return click.option(
            "--log-level",
            type=click.Choice(LEVELS),
            default=default_level,
            show_default=True,
            expose_value=False,
            callback=remember,
            help="the least severe messages logged",
        )(fn)

    return decorate
