"""Carrying out a merge plan on the local disk, one re-checked atomic step at a time.

Before touching a path, the applier compares what is on disk *now* with what the plan
saw (``Action.expect`` and the stat cache row the scan wrote). Anything that moved in
between raises :class:`~chunksync.fsops.LocalChanged`; the engine then rescans and
re-plans, so an edit made during a sync is never overwritten. File content is written
to a temp file, made durable and renamed, many files at a time with grouped barriers
(see :mod:`chunksync.sync.download` and :mod:`chunksync.fsops`).

Chunk content comes from the old local version of the same file when it still holds
that chunk (verified by its keyed id), and from the server otherwise, so a small edit
to a big file downloads only the chunks that changed.
"""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsops
from ..crypto.folder_keys import FolderKeys
from ..errors import ChunksyncError
from ..objects import ObjectId, ObjectKind, TreeEntry
from ..paths import validate_relpath
from ..storage.index import FileState, Index
from .download import BatchWriter
from .objects_io import ObjectReader
from .plan import Action

__all__ = ["Applier", "ApplyOutcome", "stat_state"]


def stat_state(path: str, st: os.stat_result, manifest_id: ObjectId) -> FileState:
    return FileState(
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
        mode=st.st_mode,
        manifest_id=manifest_id,
    )


@dataclass
class ApplyOutcome:
    """What applying changed, for the index transaction that records the sync."""

    states: dict[str, FileState] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    written: int = 0
    deleted: int = 0
    bytes_down: int = 0


class Applier:
    """Executes plan actions; runs in a worker thread, downloads through the event loop."""

    def __init__(
        self,
        root: Path,
        tmpdir: Path,
        keys: FolderKeys,
        index: Index,
        reader: ObjectReader,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.root = root
        self.tmpdir = tmpdir
        self.keys = keys
        self.index = index
        self.reader = reader
        self.loop = loop

    # --- re-checks ------------------------------------------------------------------
    def _matches(self, path: str, expect: TreeEntry | None, current: os.stat_result | None) -> bool:
        if expect is None:
            return current is None
        if current is None:
            return False
        if expect.kind == "dir":
            return stat.S_ISDIR(current.st_mode)
        if expect.kind == "symlink":
            if not stat.S_ISLNK(current.st_mode):
                return False
            try:
                return fsops.readlink_at(self.root, path) == expect.target
            except (OSError, ChunksyncError):
                return False
        known = self.index.get_state(path)
        return (
            stat.S_ISREG(current.st_mode)
            and known is not None
            and known.manifest_id == expect.id
            and (known.size, known.mtime_ns, known.inode, known.ctime_ns)
            == (current.st_size, current.st_mtime_ns, current.st_ino, current.st_ctime_ns)
        )

    def check(self, path: str, expect: TreeEntry | None) -> Callable[[os.stat_result | None], None]:
        def check(current: os.stat_result | None) -> None:
            if not self._matches(path, expect, current):
                raise fsops.LocalChanged(f"{path} changed while syncing; rescanning")

        return check

    # --- content --------------------------------------------------------------------
    def add_sources(self, base: Path, relpath: str, manifest_id: ObjectId | None) -> None:
        """Remember where a local file holds chunks, to copy them instead of downloading."""
        if manifest_id is None:
            return
        try:
            manifest = self.reader.load_manifest(manifest_id)
        except KeyError:
            return
        offset = 0
        for ref in manifest.chunks:
            self.sources.setdefault(ref.id, (base, relpath, offset, ref.size))
            offset += ref.size

    def read_local(self, oid: ObjectId) -> bytes | None:
        base, relpath, offset, size = self.sources[oid]
        try:
            data = fsops.read_at(base, relpath, offset, size)
        except (OSError, ChunksyncError):
            return None
        return data if self.keys.verify_id(ObjectKind.CHUNK, data, oid) else None

    # --- actions --------------------------------------------------------------------
    def run(self, actions: Sequence[Action]) -> ApplyOutcome:
        """Execute ``actions`` in order. File writes go through a :class:`BatchWriter`
        (batched, pipelined downloads; grouped durability barriers): any other action
        first waits for the pending writes, except a mkdir no pending write covers.
        Deleted files wait in the temp directory until the end, so a file moved or
        renamed on another device is rebuilt from local content instead of downloaded."""
        outcome = ApplyOutcome()
        self.sources: dict[ObjectId, tuple[Path, str, int, int]] = {}
        self._trash: list[Path] = []
        self.reader.progress.expect_files(sum(1 for a in actions if a.op == "write"))
        writes = BatchWriter(self, outcome)
        try:
            for action in actions:
                validate_relpath(action.path)
                if action.op == "write":
                    writes.add(action)
                    continue
                if action.op != "mkdir" or writes.covers(action.path):
                    writes.flush()
                getattr(self, f"_do_{action.op}")(action, outcome)
            writes.flush()
        finally:
            writes.close()
            for path in self._trash:
                path.unlink(missing_ok=True)
        outcome.bytes_down = self.reader.bytes_down
        return outcome

    def state_of(self, path: str, st: os.stat_result, manifest_id: ObjectId) -> FileState:
        return stat_state(path, st, manifest_id)

    def _do_set_meta(self, action: Action, outcome: ApplyOutcome) -> None:
        entry = action.entry
        if entry is not None and entry.kind == "symlink":
            return self._do_symlink(action, outcome)  # only its mtime differs: relink
        # B101: invariant for the type checker
        assert entry is not None and entry.id is not None  # nosec B101
        self.check(action.path, action.expect)(fsops.lstat_at(self.root, action.path))
        new_stat = fsops.set_meta_at(self.root, action.path, entry.executable, entry.mtime_ns)
        outcome.states[action.path] = stat_state(action.path, new_stat, entry.id)

    def _do_mkdir(self, action: Action, outcome: ApplyOutcome) -> None:
        current = fsops.lstat_at(self.root, action.path)
        if current is not None and not stat.S_ISDIR(current.st_mode):
            raise fsops.LocalChanged(f"{action.path} is no longer what the plan saw; rescanning")
        fsops.mkdir_at(self.root, action.path)

    def _do_symlink(self, action: Action, outcome: ApplyOutcome) -> None:
        # B101: invariant for the type checker
        assert action.entry is not None and action.entry.target is not None  # nosec B101
        self.check(action.path, action.expect)(fsops.lstat_at(self.root, action.path))
        fsops.symlink_at(self.root, action.path, action.entry.target, action.entry.mtime_ns)
        outcome.removed.append(action.path)

    def _do_delete(self, action: Action, outcome: ApplyOutcome) -> None:
        current = fsops.lstat_at(self.root, action.path)
        self.check(action.path, action.expect)(current)
        if action.expect is not None and action.expect.kind == "file" and current is not None:
            # Move the file out first (atomic), then make sure what moved is what was
            # checked: an edit that slipped in between goes back, it is never deleted.
            self.tmpdir.mkdir(parents=True, exist_ok=True)
            kept = fsops.move_out(self.root, action.path, self.tmpdir, f"del-{uuid.uuid4().hex}")
            moved = os.lstat(kept)
            if (moved.st_ino, moved.st_size, moved.st_mtime_ns) != (
                current.st_ino,
                current.st_size,
                current.st_mtime_ns,
            ):
                fsops.move_back(kept, self.root, action.path)
                raise fsops.LocalChanged(f"{action.path} changed while syncing; rescanning")
            self._trash.append(kept)
            self.add_sources(self.tmpdir, kept.name, action.expect.id)
        else:
            fsops.remove_at(self.root, action.path)
        outcome.removed.append(action.path)
        outcome.deleted += 1

    def _do_rmdir(self, action: Action, outcome: ApplyOutcome) -> None:
        fsops.rmdir_at(self.root, action.path)

    def _do_rename_local(self, action: Action, outcome: ApplyOutcome) -> None:
        assert action.dest is not None  # nosec B101  # invariant for the type checker
        validate_relpath(action.dest)
        self.check(action.path, action.expect)(fsops.lstat_at(self.root, action.path))
        fsops.rename_at(self.root, action.path, action.dest)
        outcome.removed.append(action.path)
        moved = fsops.lstat_at(self.root, action.dest)
        if moved is not None and stat.S_ISREG(moved.st_mode) and action.expect and action.expect.id:
            outcome.states[action.dest] = stat_state(action.dest, moved, action.expect.id)
            self.add_sources(self.root, action.dest, action.expect.id)
