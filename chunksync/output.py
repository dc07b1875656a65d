"""Everything chunksync shows a person goes through here, so an odd name cannot forge
output.

File names on Linux may hold any byte but ``/`` and NUL: control characters (a
terminal escape such as ``\\x1b[31m``, a carriage return or a newline that would forge
a line of output or of a log), backslashes, and bytes that are not UTF-8 at all. Such
names reach the user from the disk (the scan), from other devices through the server
(trees, commits' device names, conflict records) and inside error messages. Rather
than trusting every message's author to escape each name, every line of text is
escaped as a whole, on its way out, by one function, :func:`chunksync.paths.display`:

* :func:`say` prints one line (stdout, or stderr with ``err=True``); the caller never
  builds multi-line strings from names, so an embedded newline is shown as ``\\x0a``
  and never starts a line of its own;
* :class:`DisplayFormatter` does the same for log records (the daemon's warnings, the
  index's "rebuilt" line), installed by :func:`setup_logging`;
* :func:`to_json` is the machine-readable side: names stay exact, not escaped for
  display. The output is ASCII only (``ensure_ascii``), so control characters appear
  as ``\\u00XX`` escapes and never raw; a name that is not valid UTF-8 carries each
  undecodable byte as a lone surrogate ``\\udc80``–``\\udcff`` (Python's
  ``surrogateescape``), so ``os.fsencode(json.loads(...)[...])`` gives the bytes back
  and ``json.dumps`` never fails on such a name.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from .paths import display

__all__ = ["DisplayFormatter", "say", "setup_logging", "to_json"]

_FORMAT = "chunksync: %(name)s: %(message)s"


def say(line: object, *, err: bool = False) -> None:
    """Print one line for a person, escaped (see the module docstring)."""
    click.echo(display(str(line)), err=err)


def to_json(doc: Any) -> str:
    """``doc`` as exact, ASCII-only JSON (see the module docstring)."""
    return json.dumps(doc, indent=2, sort_keys=True, default=str, ensure_ascii=True)


class DisplayFormatter(logging.Formatter):
    """A log line escaped as a whole, traceback included, so it stays one line."""

    def format(self, record: logging.LogRecord) -> str:
        return display(super().format(record))


class _StderrHandler(logging.Handler):
    """Writes to the ``sys.stderr`` of the moment (a test runner swaps it per command)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed stream: nothing better to do
            self.handleError(record)


def setup_logging(level: int = logging.WARNING) -> None:
    """Send warnings of every logger to stderr as escaped lines; idempotent."""
    root = logging.getLogger()
    if any(isinstance(h, _StderrHandler) for h in root.handlers):
        return
    handler = _StderrHandler(level)
    handler.setFormatter(DisplayFormatter(_FORMAT))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
