"""``chunksync log`` and ``chunksync restore``: a folder's snapshots, one path's history,
and getting old versions back.

Both take ``[DIR] [PATH...]``: when the first argument is not a synced folder, the
folder around the current directory is used and the paths are read relative to the
current directory (so ``cd docs/notes; chunksync log todo.txt`` works); with DIR they
are relative to the folder, as stored.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_base import command_errors, emit, folder_and_rest, run, with_progress
from .errors import UserError
from .objects import short_id
from .output import say

if TYPE_CHECKING:
    from .history import Snapshot

__all__ = ["log", "restore"]


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def split_args(args: tuple[str, ...]) -> tuple[Path, list[str]]:
    """The folder and its paths, folder-relative (see the module docstring)."""
    directory, rest = folder_and_rest(args)
    if rest and len(rest) == len(args):  # the folder was found from the current directory
        root, here = directory.resolve(), Path.cwd().resolve()
        rel = []
        for p in rest:
            full = Path(os.path.normpath(here / p))
            if full != root and root not in full.parents:
                raise UserError(f"{p} is not inside the synced folder {root}")
            rel.append(full.relative_to(root).as_posix())
        rest = rel
    return directory, rest


@click.command()
@click.argument("args", nargs=-1, metavar="[DIR] [PATH]")
@click.option("--json", "as_json", is_flag=True)
@click.option("--events", is_flag=True, help="this device's change journal instead (works offline)")
@command_errors
def log(args: tuple[str, ...], as_json: bool, events: bool) -> None:
    """List snapshots (id, time, device, summary), or one path's history (exit 2 for a
    path no snapshot holds)."""
    from .folder import SyncFolder
    from .history import list_snapshots, path_history
    from .sync.objects_io import ObjectReader

    directory, paths = split_args(args)
    if len(paths) > 1:
        raise UserError("log takes one PATH")
    path = paths[0] if paths else None
    if events:
        from .status import list_events

        journal_rows = [e for e in list_events(directory) if not path or e.get("path") == path]
        if path and not journal_rows:
            raise UserError(f"no change of {path!r} in this device's journal")

        def journal() -> None:
            for e in journal_rows:
                say(f"{when(e['time_ns'] / 1e9)}  {e['device']}  {e['change']:<9} {e['path']}")

        emit(journal_rows, as_json, journal)
        return

    async def go() -> list[tuple[Snapshot, str]]:
        async with SyncFolder.open(directory) as f:
            reader = ObjectReader(f.keys, f.index, f.store)
            snaps = await list_snapshots(reader)
            if path:
                return await path_history(reader, snaps, path)
            return [(s, "") for s in snaps]

    rows = run(go())
    if path and not rows:
        raise UserError(
            f"no history for {path!r}: no snapshot of this folder holds it "
            "(paths are relative to the folder; 'chunksync log' lists the snapshots)"
        )
    docs = [dict(s.to_json(), **({"change": c} if c else {})) for s, c in rows]

    def text() -> None:
        for snap, change in reversed(rows):
            summary = ", ".join(f"{k} {v}" for k, v in sorted(snap.commit.summary.items()) if v)
            extra = f"  {change}" if change else (f"  {summary}" if summary else "")
            say(f"{short_id(snap.id)}  {when(snap.time)}  {snap.commit.device}{extra}")

    emit(docs, as_json, text)


@click.command()
@click.argument("args", nargs=-1, metavar="[DIR] [PATH]...")
@click.option("--snapshot", "snapshot_id")
@click.option(
    "--at",
    help="the newest snapshot at or before this time: ISO 8601 (2026-11-25T14:00Z) "
    "or relative ('2 hours ago', 'yesterday')",
)
@click.option("--to", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@command_errors
def restore(args: tuple[str, ...], snapshot_id: str | None, at: str | None, out: Path) -> None:
    """Restore a snapshot (or some paths of it) into another directory (with progress:
    files, bytes, time left, when stderr is a terminal)."""
    from .folder import SyncFolder
    from .history import find_snapshot, list_snapshots, parse_time
    from .history import restore as do_restore
    from .sync.objects_io import ObjectReader

    directory, paths = split_args(args)
    if out.resolve() == directory.resolve() or directory.resolve() in out.resolve().parents:
        raise UserError("restore into a directory outside the synced folder")
    if at is not None:
        parse_time(at)  # a typo fails before anything is opened

    async def go(progress: Any) -> tuple[Any, int]:
        async with SyncFolder.open(directory) as f:
            reader = ObjectReader(f.keys, f.index, f.store, progress)
            snap = await find_snapshot(reader, await list_snapshots(reader), snapshot_id, at)
            return snap, await do_restore(reader, snap, tuple(paths), out)

    snap, count = with_progress(go)
    say(
        f"restored {count} file{'s' if count != 1 else ''} of snapshot {short_id(snap.id)} "
        f"({when(snap.time)}) to {out}"
    )
