"""What the dashboard reads from and does to a running folder daemon.

Every action is the command line's own code, called with the daemon's open index (LMDB
must not be opened twice in one process) and the daemon's gated store (a paused folder
makes no transfer for the dashboard either):

* conflicts and resolve: :func:`chunksync.status.list_conflicts` and
  :func:`chunksync.status.resolve_conflict`, exactly what ``chunksync conflicts`` and
  ``chunksync resolve`` run; then a sync, as ``resolve`` does;
* history and restore: :mod:`chunksync.history`, as ``chunksync log`` and
  ``chunksync restore`` (same rule: never restore into the synced folder);
* pause / resume / sync-now: the daemon's control handler, as the control socket.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ChunksyncError, UserError
from ..progress import Direction
from ..watcher import Batch

if TYPE_CHECKING:
    from ..daemon import FolderDaemon
    from ..history import Snapshot

__all__ = [
    "Peer",
    "UiProgress",
    "conflicts",
    "control",
    "history",
    "merges",
    "resolve",
    "restore",
    "undo_merge",
]


class UiProgress:
    """Byte and file counts of the round in progress, for "syncing: 40%" (a Progress)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = {"up": 0, "down": 0}
        self.done = {"up": 0, "down": 0}
        self.files_expected = self.files_finished = 0
        self.current_phase: str | None = None

    def phase(self, name: str) -> None:
        self.current_phase = name

    def transferred(self, direction: Direction, nbytes: int) -> None:
        self.done[direction] += nbytes

    def expect(self, direction: Direction, total: int) -> None:
        self.total[direction] += total

    def expect_files(self, total: int) -> None:
        self.files_expected += total

    def files_done(self, count: int) -> None:
        self.files_finished += count

    def percent(self) -> int | None:
        total = sum(self.total.values())
        if total <= 0:
            return None
        return min(100, round(100 * sum(self.done.values()) / total))


def status_of(daemon: FolderDaemon) -> dict[str, Any]:
    """The folder's live state, as ``chunksync status --json`` shows it."""
    doc = dict(daemon.status.to_json())
    doc.update(daemon.report.to_json())
    doc["root"] = str(daemon.folder.paths.root)
    progress = getattr(daemon.engine, "progress", None)
    doc["progress"] = None
    if isinstance(progress, UiProgress):
        if doc["state"] == "idle":
            progress.reset()  # the round is over: the next one counts afresh
        doc["progress"] = progress.percent()
    busy = doc["state"] == "syncing" and doc["progress"] is not None
    doc["progress_text"] = (
        f"{doc['progress']}% of {_size(sum(progress.total.values()))}"
        if (busy and isinstance(progress, UiProgress))
        else ""
    )
    last = daemon.status.last_sync_ns
    doc["last_sync_text"] = (
        "never"
        if last is None
        else datetime.fromtimestamp(last / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    )
    return doc


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


async def control(daemon: FolderDaemon, command: str) -> str:
    reply = await daemon.handle(command)
    if "error" in reply:
        raise UserError(str(reply["error"]))
    return str(reply.get("message", "ok"))


async def conflicts(daemon: FolderDaemon) -> list[dict[str, Any]]:
    from ..status import list_conflicts

    return await asyncio.to_thread(list_conflicts, daemon.folder.paths.root, daemon.folder.index)


async def resolve(daemon: FolderDaemon, path: str, keep: str) -> str:
    """``chunksync resolve DIR PATH --keep KEEP``, then sync (as the command does)."""
    from ..status import resolve_conflict

    if keep not in ("mine", "theirs", "both"):
        raise UserError(f"keep must be mine, theirs or both, not {keep[:20]!r}")
    message = await asyncio.to_thread(
        resolve_conflict, daemon.folder.paths.root, path, keep, daemon.folder.index
    )
    daemon.status.conflicts = daemon._count_conflicts()
    daemon.want(Batch(full=True), force=True)
    return message


async def merges(daemon: FolderDaemon) -> list[dict[str, Any]]:
    """The recent automatic merges, as ``chunksync conflicts`` lists them."""
    from ..review import recent_merges

    f = daemon.folder
    return await asyncio.to_thread(recent_merges, f.index, f.paths.root)


async def undo_merge(daemon: FolderDaemon, path: str, side: str) -> str:
    """``chunksync resolve DIR PATH --undo-merge SIDE``, then sync (as the command does)."""
    from ..review import undo_merge as bring_back

    if side not in ("mine", "theirs"):
        raise UserError(f"side must be mine or theirs, not {side[:20]!r}")
    message = await bring_back(daemon.folder.paths.root, _reader(daemon), path, side)
    daemon.want(Batch(full=True), force=True)
    return message


def _reader(daemon: FolderDaemon) -> Any:
    from ..sync.objects_io import ObjectReader

    f = daemon.folder
    return ObjectReader(f.keys, f.index, daemon.gate)


async def history(daemon: FolderDaemon, path: str | None = None) -> list[tuple[Snapshot, str]]:
    """Snapshots, newest first; with ``path``, those that added, changed or deleted it."""
    from ..history import list_snapshots, path_history

    reader = _reader(daemon)
    snaps = await list_snapshots(reader)
    rows = await path_history(reader, snaps, path) if path else [(s, "") for s in snaps]
    return list(reversed(rows))


@dataclass(frozen=True, slots=True)
class Peer:
    device: str
    last_seen: float  # server time of its newest snapshot
    this_device: bool


def peers(daemon: FolderDaemon, snapshots: list[tuple[Snapshot, str]]) -> list[Peer]:
    """Every device that made a snapshot of the folder, with when it last did."""
    seen: dict[str, float] = {}
    for snap, _ in snapshots:
        seen[snap.commit.device] = max(seen.get(snap.commit.device, 0.0), snap.time)
    me = daemon.status.device
    return sorted(
        (Peer(d, t, d == me) for d, t in seen.items()), key=lambda p: (not p.this_device, p.device)
    )


def check_target(root: Path, out: Path) -> Path:
    """The restore target, refused inside the synced folder (as ``chunksync restore``)."""
    if not out.is_absolute():
        raise UserError("give the restore target as an absolute path")
    target, folder = out.resolve(), root.resolve()
    if target == folder or folder in target.parents:
        raise UserError("restore into a directory outside the synced folder")
    return target


async def restore(daemon: FolderDaemon, snapshot_id: str, path: str, out: str) -> str:
    """``chunksync restore DIR --snapshot ID [PATH] --to OUT``."""
    from ..history import find_snapshot, list_snapshots
    from ..history import restore as do_restore

    if not out.strip():
        raise UserError("choose where to restore to")
    target = check_target(daemon.folder.paths.root, Path(out.strip()))
    reader = _reader(daemon)
    snap = await find_snapshot(reader, await list_snapshots(reader), snapshot_id, None)
    paths = [path] if path.strip() else []
    count = await do_restore(reader, snap, paths, target)
    return (
        f"restored {count} file{'s' if count != 1 else ''} of snapshot {snap.id[:12]} to {target}"
    )


def error_text(exc: BaseException) -> str:
    return exc.message if isinstance(exc, ChunksyncError) else f"{type(exc).__name__}: {exc}"
