"""``chunksync doctor``: print (or write) the troubleshooting bundle of :mod:`.doctor`."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_base import command_errors, find_folder, is_folder
from .errors import UserError
from .fsops import atomic_write_bytes
from .output import say, to_json

__all__ = ["doctor"]


@click.command()
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--include-names",
    is_flag=True,
    help="keep file names and the folder's path in the bundle (left out by default)",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the bundle to this file (0600) instead of stdout",
)
@command_errors
def doctor(directory: Path | None, include_names: bool, output: Path | None) -> None:
    """A troubleshooting bundle (JSON): versions, config, status, failed items, index
    format, recent journal and log, clock skew, server reachability. It never holds a
    token, key or password, nor a file name unless --include-names."""
    from .doctor import bundle

    if directory is None:
        try:
            directory = find_folder()
        except UserError:
            directory = None  # no folder here: the account and server parts only
    elif not is_folder(directory):
        raise UserError(f"{directory} is not a chunksync folder")
    text = to_json(bundle(directory, include_names=include_names)) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write_bytes(output, text.encode(), mode=0o600)
    say(f"wrote {output}: attach it to your report (check it first: it is plain JSON)")
