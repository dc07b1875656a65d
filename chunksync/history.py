"""Snapshot history: listing, picking a snapshot by id prefix or time, restoring.

The server's head log is the timeline (server time, device, user, sequence); the
commits themselves, fetched and verified like any object, add the device name, the
author and the change summary. Restores write into a separate directory with the same
atomic, symlink-safe file operations the sync uses, byte for byte, with modes, mtimes
and symlinks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import fsops
from .errors import UserError
from .objects import Commit, ObjectId, ObjectKind, TreeEntry, id_from_hex, is_hex_id
from .paths import validate_relpath
from .storage.pins import pinned
from .sync.apply import Applier
from .sync.lineage import check_timeline
from .sync.objects_io import ObjectReader
from .sync.plan import Action, Op
from .treediff import walk_tree
from .wire import HeadLogEntry

__all__ = [
    "Snapshot",
    "find_snapshot",
    "list_snapshots",
    "parse_time",
    "path_history",
    "pick_snapshot",
    "restore",
]


@dataclass(frozen=True)
class Snapshot:
    id: str
    seq: int
    time: float  # server time of the head move
    device: str
    user: str
    commit: Commit

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "seq": self.seq,
            "time": datetime.fromtimestamp(self.time).astimezone().isoformat(timespec="seconds"),
            "device": self.commit.device,
            "author": self.commit.author,
            "summary": self.commit.summary,
            "parents": [p.hex() for p in self.commit.parents],
        }


async def list_snapshots(reader: ObjectReader) -> list[Snapshot]:
    """Every snapshot of the folder, oldest first, checked to form one chain."""
    entries: list[HeadLogEntry] = []
    after = 0
    while True:
        page = await reader.store.head_log(after=after, limit=1000)
        entries.extend(page)
        if len(page) < 1000:
            break
        after = page[-1].seq
    await reader.ensure(ObjectKind.COMMIT, [id_from_hex(e.head) for e in entries])
    commits = [reader.load_commit(id_from_hex(e.head)) for e in entries]
    check_timeline(entries, commits)
    return [
        Snapshot(e.head, e.seq, e.time, e.device, e.user, c)
        for e, c in zip(entries, commits, strict=True)
    ]


def parse_time(text: str, now: datetime | None = None) -> float:
    """ISO 8601 with Z or an offset (local time when none is given), or a relative or
    natural time a person types: "2 hours ago", "yesterday", "last friday 14:00"
    (``dateparser``, loaded only then: it is not light). ``now`` anchors relative
    times (tests)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        import dateparser

        settings: dict[str, object] = {
            "PREFER_DATES_FROM": "past",
            "RETURN_AS_TIMEZONE_AWARE": True,
        }
        if now is not None:
            settings["RELATIVE_BASE"] = now
        parsed = dateparser.parse(text, settings=settings)
        if parsed is None:
            raise UserError(
                f"cannot read time {text!r}: use ISO 8601 (2026-11-25T14:00:00Z) or a "
                "relative time such as '2 hours ago' or 'yesterday'"
            ) from None
        when = parsed
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


async def find_snapshot(
    reader: ObjectReader, snapshots: Sequence[Snapshot], snapshot_id: str | None, at: str | None
) -> Snapshot:
    """Like :func:`pick_snapshot`, and also finds a commit off the timeline by its full id
    (a local version kept in history by last-write-wins)."""
    try:
        return pick_snapshot(snapshots, snapshot_id, at)
    except UserError:
        if not snapshot_id or not is_hex_id(snapshot_id.lower()):
            raise
    commit = await reader.commit(id_from_hex(snapshot_id.lower()))
    return Snapshot(
        snapshot_id.lower(), commit.seq, commit.time_ns / 1e9, commit.device, commit.author, commit
    )


def pick_snapshot(
    snapshots: Sequence[Snapshot], snapshot_id: str | None, at: str | None
) -> Snapshot:
    if snapshot_id:
        matches = {s.id: s for s in snapshots if s.id.startswith(snapshot_id.lower())}
        if not matches:
            raise UserError(f"no snapshot with id {snapshot_id!r}")
        if len(matches) > 1:
            raise UserError(f"snapshot id {snapshot_id!r} is ambiguous ({len(matches)} match)")
        return next(iter(matches.values()))
    if at:
        limit = parse_time(at)
        before = [s for s in snapshots if s.time <= limit]
        if not before:
            raise UserError(f"no snapshot at or before {at}")
        return before[-1]
    raise UserError("give --snapshot ID or --at TIME")


def _select(
    entries: list[tuple[str, TreeEntry]], wanted: Sequence[str]
) -> list[tuple[str, TreeEntry]]:
    if not wanted:
        return entries
    picked = [
        (p, e)
        for p, e in entries
        if any(p == w or p.startswith(w.rstrip("/") + "/") for w in wanted)
    ]
    found = {w for w in wanted for p, _ in picked if p == w or p.startswith(w.rstrip("/") + "/")}
    missing = [w for w in wanted if w not in found]
    if missing:
        raise UserError(f"not in that snapshot: {', '.join(missing)}")
    return picked


async def restore(reader: ObjectReader, snapshot: Snapshot, paths: Sequence[str], out: Path) -> int:
    """Write ``paths`` (or everything) of a snapshot under ``out``; returns files written.
    The snapshot is pinned meanwhile, so a daemon's index upkeep keeps what it reads."""
    wanted = [validate_relpath(p.strip("/")) for p in paths]
    with pinned(reader.index, [snapshot.commit.tree]):
        return await _restore(reader, snapshot, wanted, out)


async def _restore(reader: ObjectReader, snapshot: Snapshot, wanted: list[str], out: Path) -> int:
    await reader.ensure_tree_closure(snapshot.commit.tree)
    entries = _select(list(walk_tree(snapshot.commit.tree, reader.load_tree)), wanted)
    await reader.ensure(ObjectKind.FILE, [e.id for _, e in entries if e.kind == "file" and e.id])
    # into a new or empty directory nothing can be in the way: no walk per entry to check
    occupied = out.is_dir() and any(out.iterdir())
    out.mkdir(parents=True, exist_ok=True)
    for p, e in entries if occupied else ():
        if e.kind != "dir" and fsops.lstat_at(out, p) is not None:
            raise UserError(f"{out / p} already exists: restore into an empty directory")
    reader.progress.phase("restoring")
    reader.progress.expect("down", sum(e.size or 0 for _, e in entries if e.kind == "file"))
    tmp = out / ".chunksync-restore-tmp"
    ops: dict[str, Op] = {"dir": "mkdir", "file": "write", "symlink": "symlink"}
    actions = [Action(op=ops[e.kind], path=p, entry=e, expect=None) for p, e in entries]
    applier = Applier(out, tmp, reader.keys, reader.index, reader, asyncio.get_running_loop())
    try:
        outcome = await asyncio.to_thread(applier.run, actions)
    finally:
        fsops.sweep_tmp(tmp)
        if tmp.is_dir():
            tmp.rmdir()
    return outcome.written


async def path_history(
    reader: ObjectReader, snapshots: Sequence[Snapshot], path: str
) -> list[tuple[Snapshot, str]]:
    """The snapshots in which ``path`` was added, changed or deleted."""
    path = validate_relpath(path.strip("/"))
    out: list[tuple[Snapshot, str]] = []
    previous: TreeEntry | None = None
    with pinned(reader.index, [snap.commit.tree for snap in snapshots]):
        for snap in snapshots:
            await reader.ensure_tree_closure(snap.commit.tree)
            entry = _lookup(reader, snap.commit.tree, path)
            if entry != previous:
                change = "added" if previous is None else "deleted" if entry is None else "modified"
                out.append((snap, change))
            previous = entry
    return out


def _lookup(reader: ObjectReader, root: ObjectId, path: str) -> TreeEntry | None:
    tree_id: ObjectId | None = root
    parts = path.split("/")
    for i, part in enumerate(parts):
        if tree_id is None:
            return None
        entry = reader.load_tree(tree_id).get(part)
        if entry is None or i == len(parts) - 1:
            return entry
        tree_id = entry.id if entry.kind == "dir" else None
    return None
