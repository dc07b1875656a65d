"""Command-line pieces for automatic merges: ``chunksync policy`` and the undo option.

``chunksync policy DIR`` lists the merge/conflict policy that applies per pattern —
the built-in defaults, this device's rules and the folder's synced ``.chunksyncpolicy``
— and ``chunksync policy DIR PATTERN POLICY`` sets a rule in that synced file (so
every device decides alike; the next sync publishes it), ``--remove`` drops one.
cli.py registers the command with :func:`policy_command`, handing in its shared
decorators, so this module never imports cli.py. :func:`undo_merge_now` is the work
of ``chunksync resolve DIR PATH --undo-merge mine|theirs|SNAPSHOT``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .config import FolderConfig, FolderPaths
from .conflict import POLICIES
from .errors import ConfigError
from .mergepolicy import POLICY_FILE, TEXT_PATTERNS, read_policy_file, set_policy

__all__ = ["policy_command", "undo_merge_now"]

F = TypeVar("F", bound=Callable[..., Any])


def policy_rows(directory: Path) -> list[dict[str, str]]:
    """Every rule in the order it is applied (the last matching pattern wins)."""
    paths = FolderPaths(directory.resolve())
    config = FolderConfig.load(paths)
    rows = [{"pattern": "(anything else)", "policy": "keep-both", "source": "default"}]
    rows += [{"pattern": p, "policy": "merge", "source": "default"} for p in TEXT_PATTERNS]
    rows += [
        {"pattern": p, "policy": str(v), "source": "this device"}
        for p, v in config.policies.items()
    ]
    rows += [
        {"pattern": p, "policy": v, "source": POLICY_FILE} for p, v in read_policy_file(paths.root)
    ]
    return rows


def policy_command(
    folder_dir: Callable[[Any], Any],
    command_errors: Callable[[Any], Any],
    emit: Callable[[Any, bool, Callable[[], None]], None],
) -> click.Command:
    """The ``chunksync policy DIR [PATTERN POLICY] [--remove PATTERN]`` command."""

    @click.command("policy")
    @folder_dir
    @click.argument("pattern", required=False)
    @click.argument("policy", required=False, type=click.Choice(POLICIES))
    @click.option(
        "--remove", metavar="PATTERN", help=f"drop this pattern's rule from {POLICY_FILE}"
    )
    @click.option("--json", "as_json", is_flag=True)
    @command_errors
    def policy(
        directory: Path, pattern: str | None, policy: str | None, remove: str | None, as_json: bool
    ) -> None:
        """List or set what happens when two devices change the same file.

        \b
        merge            merge both edits into the file when they are certain not to
                         overlap (text line by line, JSON key by key); otherwise a
                         conflicted copy. Default for text types (*.txt, *.md, ...).
        keep-both        keep the server's version at the name and this device's as
                         a conflicted copy. Default for everything else.
        last-write-wins  keep the newer version; the other stays in history.
        manual           keep both and list the conflict until 'chunksync resolve'.

        With PATTERN POLICY (gitignore-style pattern), sets the rule in the folder's
        synced .chunksyncpolicy file; the last matching rule wins.
        """
        root = FolderPaths(directory.resolve()).root
        if (pattern is None) != (policy is None):
            raise ConfigError("give both PATTERN and POLICY to set a rule, or neither to list")
        if pattern is not None:
            set_policy(root, pattern, policy)
            click.echo(f"{pattern}: {policy} (in {POLICY_FILE}; the next sync shares it)")
        if remove is not None:
            set_policy(root, remove, None)
            click.echo(f"{remove}: rule removed from {POLICY_FILE}")
        rows = policy_rows(directory)
        if pattern is not None or remove is not None:
            return

        def text() -> None:
            click.echo("rules, weakest first (the last matching pattern wins):")
            for row in rows:
                click.echo(f"  {row['pattern']:<24} {row['policy']:<16} ({row['source']})")

        emit(rows, as_json, text)

    return policy


async def undo_merge_now(directory: Path, path: str, side: str) -> str:
    """Bring one side of a merge back into the folder (see :mod:`chunksync.review`)."""
    from .folder import SyncFolder
    from .review import undo_merge
    from .sync.objects_io import ObjectReader

    async with SyncFolder.open(directory) as folder:
        reader = ObjectReader(folder.keys, folder.index, folder.store)
        return await undo_merge(folder.paths.root, reader, path, side)
