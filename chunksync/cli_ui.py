"""Command-line pieces for the dashboard: ``chunksync ui [DIR] [--open]`` and the daemon's
``--ui-port`` / ``--no-ui`` options (kept out of cli.py, which is over its size).

``ui`` prints a one-time login link on its last line (:mod:`chunksync.ui.login`) and
opens a browser only when asked with ``--open``. It reads the token file the running
daemon wrote; it does not start a daemon.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .config import FolderPaths

__all__ = ["ui_command", "ui_options", "ui_port_of"]

F = TypeVar("F", bound=Callable[..., Any])


def ui_options(fn: F) -> F:
    """``--ui-port PORT`` and ``--no-ui`` for ``chunksync daemon``."""
    fn = click.option("--no-ui", is_flag=True, help="serve no dashboard (see 'chunksync ui')")(fn)
    return click.option(
        "--ui-port",
        type=click.IntRange(0, 65535),
        default=0,
        show_default=True,
        help="port of the local dashboard on 127.0.0.1 (0: any free port; 'chunksync ui' finds it)",
    )(fn)


def ui_port_of(ui_port: int, no_ui: bool) -> int | None:
    return None if no_ui else ui_port


def _containing_folder(start: Path) -> Path | None:
    for candidate in (start, *start.parents):
        if FolderPaths(candidate).config.exists():
            return candidate
    return None


def ui_command(command_errors: Callable[[Any], Any]) -> click.Command:
    """The ``chunksync ui [DIR] [--open]`` command."""

    @click.command("ui")
    @click.argument(
        "directory",
        required=False,
        type=click.Path(file_okay=False, exists=True, path_type=Path),
    )
    @click.option("--open", "open_browser", is_flag=True, help="also open the link in a browser")
    @command_errors
    def ui(directory: Path | None, open_browser: bool) -> None:
        """Print a one-time login link to the running daemon's dashboard (last line).

        DIR defaults to the synced folder that holds the current directory, else the
        dashboard of the daemon started last by this user. The link works once, for
        five minutes; run the command again for another."""
        from .ui.login import find_address, login_url

        folder = directory or _containing_folder(Path.cwd().resolve())
        address = find_address(folder)
        url = login_url(address)
        click.echo(f"dashboard: {address.url} (the link below logs in once, for 5 minutes)")
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        click.echo(url)

    return ui
