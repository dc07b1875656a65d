"""The conflict review's automatic merges: listing them, and undoing one.

Every merge is journaled on the device that made it and, read back from the merge
commit's message, on every device that receives it (``change: merged`` events, see
:mod:`chunksync.sync.automerge`). :func:`recent_merges` turns them into plain words —
who changed the file, who merged it and when, what was kept (both edits) — each with
the exact commands that bring back either side.

:func:`undo_merge` is that command's work: the file at ``PATH`` becomes, byte for byte,
one side's version from the merge commit's parents — ``mine`` (the version of the
device that made the merge: the merge commit's second parent, kept in history for
this) or ``theirs`` (the version that was on the server: its first parent), or the
snapshot id the listing shows. It replaces only the merged version itself: a file
changed since the merge is left alone (use ``chunksync restore``), so an undo never
loses an edit. The merged version stays in history.
"""

from __future__ import annotations

import shlex
import stat
import time
from pathlib import Path
from typing import Any

from . import fsinstall, fsops
from .chunker import Chunker
from .errors import UserError
from .objects import ChunkRef, FileManifest, ObjectId, TreeEntry, id_from_hex
from .paths import validate_relpath
from .storage.index import Index
from .sync.automerge import fetch_content, local_chunks
from .sync.objects_io import ObjectReader

__all__ = ["MAX_LISTED", "conflict_review", "find_merge", "recent_merges", "undo_merge"]

MAX_LISTED = 20  # the most recent automatic merges shown by "chunksync conflicts"


def _merges(index: Index) -> list[dict[str, Any]]:
    """Merge events, newest first, each merge (snapshot, path) once."""
    seen: set[tuple[str, str]] = set()
    out = []
    for _, event in reversed(list(index.iter_events())):
        if event.get("change") != "merged" or not isinstance(event.get("snapshot"), str):
            continue
        key = (event["snapshot"], event["path"])
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


def recent_merges(index: Index, directory: Path) -> list[dict[str, Any]]:
    """The recent automatic merges, in plain words, with the commands to undo them."""
    rows = []
    for event in _merges(index)[:MAX_LISTED]:
        path = event["path"]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["time_ns"] / 1e9))
        mine = event.get("mine") or event["device"]
        theirs = event.get("theirs") or "another device"
        base = f"chunksync resolve {shlex.quote(str(directory))} {shlex.quote(path)} --undo-merge"
        undo = {"mine": f"{base} mine", "theirs": f"{base} theirs"}
        how = "key by key (JSON)" if event.get("how") == "json-keys" else "line by line"
        rows.append(
            {
                "path": path,
                "kind": "automatic-merge",
                "time": when,
                "device": event["device"],
                "mine": mine,
                "theirs": theirs,
                "snapshot": event["snapshot"],
                "mine_snapshot": event.get("mine_snapshot"),
                "theirs_snapshot": event.get("theirs_snapshot"),
                "undo": undo,
                "explanation": (
                    f'"{path}" was changed on {mine} and on {theirs} before they synced; the '
                    f"edits did not overlap, so {event['device']} merged them {how} on {when}. "
                    "Both sets of changes were kept in the one file and no copy was made. "
                    f'To bring back the version from {mine}: "{undo["mine"]}"; '
                    f'the version from {theirs}: "{undo["theirs"]}".'
                ),
            }
        )
    return rows


def conflict_review(directory: Path) -> list[dict[str, Any]]:
    """What ``chunksync conflicts`` shows: open conflicts (each with the commands that
    resolve it), then the recent automatic merges (each with the commands that undo it)."""
    from .status import list_conflicts

    rows = list_conflicts(directory)
    where = shlex.quote(str(directory))
    for row in rows:
        if row.get("copy_path") or row.get("policy") == "manual":
            name = shlex.quote(row["path"])
            row["resolve"] = {
                keep: f"chunksync resolve {where} {name} --keep {keep}"
                for keep in ("mine", "theirs", "both")
            }
    paths = directory.resolve() / fsops.STATE_DIR_NAME / "index"
    with Index.open(paths) as index:
        rows += recent_merges(index, directory)
    return rows


def find_merge(index: Index, path: str, side: str) -> tuple[dict[str, Any], str]:
    """The newest merge of ``path`` and the snapshot id that holds the wanted side."""
    for event in _merges(index):
        if event["path"] != path:
            continue
        sides = {"mine": event.get("mine_snapshot"), "theirs": event.get("theirs_snapshot")}
        wanted = sides.get(side)
        if isinstance(wanted, str):
            return event, wanted
        for snapshot in sides.values():
            if isinstance(snapshot, str) and len(side) >= 6 and snapshot.startswith(side.lower()):
                return event, snapshot
    raise UserError(
        f"no automatic merge of {path} with side {side!r}: see 'chunksync conflicts' "
        "(use mine, theirs, or a snapshot id it shows)"
    )


async def _entry_at(reader: ObjectReader, snapshot: str, path: str) -> TreeEntry | None:
    commit = await reader.commit(id_from_hex(snapshot))
    await reader.ensure_tree_closure(commit.tree)
    tree_id: ObjectId | None = commit.tree
    parts = path.split("/")
    for i, part in enumerate(parts):
        if tree_id is None:
            return None
        entry = reader.load_tree(tree_id).get(part)
        if entry is None or i == len(parts) - 1:
            return entry
        tree_id = entry.id if entry.kind == "dir" else None
    return None


def _on_disk_id(root: Path, path: str, reader: ObjectReader) -> ObjectId | None:
    """The manifest id of the file at ``path`` now, as a scan would compute it."""
    st = fsops.lstat_at(root, path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return None
    data = fsops.read_at(root, path, 0, st.st_size + 1)
    keys = reader.keys
    chunks = local_chunks(keys, Chunker(seed=keys.chunker_seed), data)
    manifest = FileManifest(len(data), tuple(ChunkRef(oid, len(c)) for oid, c in chunks))
    return keys.meta_id(manifest.encode())


async def undo_merge(root: Path, reader: ObjectReader, path: str, side: str) -> str:
    """Put one side of the newest merge of ``path`` back in the folder (the next sync
    publishes it); returns what was done in plain words."""
    path = validate_relpath(path.strip("/"))
    event, snapshot = find_merge(reader.index, path, side)
    merged = await _entry_at(reader, event["snapshot"], path)
    wanted = await _entry_at(reader, snapshot, path)
    if wanted is None or wanted.kind != "file" or merged is None:
        raise UserError(f"{path} is not a file in snapshot {snapshot[:12]}")
    if _on_disk_id(root, path, reader) != merged.id:
        raise UserError(
            f"{path} changed since the automatic merge, so undoing it would lose that "
            f"change; bring the version back with 'chunksync restore {shlex.quote(str(root))} "
            f"--snapshot {snapshot} {shlex.quote(path)} --to SOMEWHERE' and compare"
        )
    data = await fetch_content(reader, wanted)
    tmpdir = root / fsops.STATE_DIR_NAME / "tmp"
    fsinstall.write_file_at(
        root, tmpdir, path, [data], executable=wanted.executable, mtime_ns=time.time_ns()
    )
    who = event.get(side) if side in ("mine", "theirs") else None
    label = f"the version from {who}" if who else f"the version of snapshot {snapshot[:12]}"
    return f"{path}: brought back {label} (the merged version stays in history)"
