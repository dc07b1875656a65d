"""Command-line pieces for bandwidth limits (``--limit-upload``/``--limit-download``).

Kept apart from cli.py, which is over its size: the two options shared by ``init``,
``join``, ``sync`` and ``daemon``, and the ``limit`` command that shows or sets a
folder's own limits (stored in ``.chunksync/config.json``). cli.py registers the
command with :func:`limit_command`, handing in its shared decorators, so this module
never imports cli.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from .config import FolderConfig, FolderPaths
from .transport.ratelimit import BandwidthLimits

__all__ = ["limit_command", "limit_options", "limits_of"]

F = TypeVar("F", bound=Callable[..., Any])

_KIB = click.IntRange(0)


def limit_options(scope: str) -> Callable[[F], F]:
    """``--limit-upload KIB`` and ``--limit-download KIB``; ``scope`` says for the help
    text what they apply to (this run, or the folder being created)."""

    def decorate(fn: F) -> F:
        fn = click.option(
            "--limit-download",
            type=_KIB,
            default=0,
            metavar="KIB",
            help=f"download limit in KiB/s for {scope} (0: none)",
        )(fn)
        return click.option(
            "--limit-upload",
            type=_KIB,
            default=0,
            metavar="KIB",
            help=f"upload limit in KiB/s for {scope} (0: none)",
        )(fn)

    return decorate


def limits_of(upload: int, download: int) -> BandwidthLimits:
    return BandwidthLimits(upload_kib=upload, download_kib=download)


def describe(limits: BandwidthLimits) -> str:
    def one(kib: int) -> str:
        return f"{kib} KiB/s" if kib else "unlimited"

    return f"upload {one(limits.upload_kib)}, download {one(limits.download_kib)}"


def limit_command(
    folder_dir: Callable[[Any], Any],
    command_errors: Callable[[Any], Any],
    emit: Callable[[Any, bool, Callable[[], None]], None],
) -> click.Command:
    """The ``chunksync limit DIR [--upload KIB] [--download KIB]`` command."""

    @click.command("limit")
    @folder_dir
    @click.option(
        "--upload", type=_KIB, metavar="KIB", help="this folder's upload limit in KiB/s (0: none)"
    )
    @click.option(
        "--download",
        type=_KIB,
        metavar="KIB",
        help="this folder's download limit in KiB/s (0: none)",
    )
    @click.option("--json", "as_json", is_flag=True)
    @command_errors
    def limit(directory: Path, upload: int | None, download: int | None, as_json: bool) -> None:
        """Show or set this folder's bandwidth limits (a running daemon applies them
        when restarted; 'sync'/'daemon' --limit-* add process-wide limits)."""
        paths = FolderPaths(directory.resolve())
        config = FolderConfig.load(paths)
        if upload is not None or download is not None:
            config = replace(
                config,
                limit_upload_kib=config.limit_upload_kib if upload is None else upload,
                limit_download_kib=config.limit_download_kib if download is None else download,
            )
            config.save(paths)
        limits = BandwidthLimits(config.limit_upload_kib, config.limit_download_kib)
        emit(limits.to_json(), as_json, lambda: click.echo(f"{directory}: {describe(limits)}"))

    return limit
