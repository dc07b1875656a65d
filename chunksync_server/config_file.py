"""``--config FILE``: a TOML file beside the flags of ``chunksync-server serve``.

Every key is the name of a ``serve`` flag without its dashes (``port``, ``tls-cert``,
``token-days``, ``log-level``, ``data`` …; ``_`` and ``-`` are the same), so a flag added
to ``serve`` later is a setting at once. The file only supplies defaults through
click's ``default_map``: a flag on the command line, then an environment variable
(``CHUNKSYNC_SERVER_DATA``), win over the file. Values are checked and converted
exactly as the flag's are; an unknown key is an error naming the known ones, so a typo
is never silently ignored. Example (``packaging/server.toml``)::

    data = "/var/lib/chunksync-server"
    host = "0.0.0.0"
    port = 8400
    token-days = 30
    log-level = "info"
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["CONFIG_ENV", "config_option", "settings_of"]

CONFIG_ENV = "CHUNKSYNC_SERVER_CONFIG"
F = TypeVar("F", bound=Callable[..., Any])


def _names(command: click.Command) -> dict[str, str]:
    """Setting name -> parameter name, from every long flag of ``command``."""
    names: dict[str, str] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in (None, "config"):
            continue
        for opt in (*param.opts, *param.secondary_opts):
            if opt.startswith("--"):
                names[opt[2:].replace("_", "-")] = param.name
        names[param.name.replace("_", "-")] = param.name
    return names


def settings_of(command: click.Command, path: Path) -> dict[str, Any]:
    """The file's settings as a ``default_map`` for ``command``; BadParameter if wrong."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise click.BadParameter(f"{path} is not valid TOML: {exc}") from exc
    names = _names(command)
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = names.get(key.replace("_", "-"))
        if name is None:
            flags = {o[2:] for p in command.params for o in p.opts if o.startswith("--")}
            known = ", ".join(sorted(flags - {"config", "help"}))
            raise click.BadParameter(f"unknown setting {key!r} in {path} (known: {known})")
        out[name] = str(value) if isinstance(value, Path) else value
    return out


def _load(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None:
        ctx.default_map = {**(ctx.default_map or {}), **settings_of(ctx.command, value)}
    return value


def config_option(fn: F) -> F:
    """The eager ``--config FILE`` option (read before every other flag)."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        envvar=CONFIG_ENV,
        is_eager=True,
        expose_value=False,
        callback=_load,
        help=f"TOML file of serve settings, keys named like the flags (or ${CONFIG_ENV})",
    )(fn)
