"""Carrying out a merge plan on the local disk, one re-checked atomic step at a time.

Before touching a path, the applier compares what is on disk *now* with what the plan
saw (``Action.expect`` and the stat cache row the scan wrote). Anything that moved in
between raises :class:`~chunksync.fsops.LocalChanged`; the engine then rescans and
re-plans, so an edit made during a sync is never overwritten. File content is written
to a temp file, fsynced and renamed (see :mod:`chunksync.fsops`).

Chunk content comes from the old local version of the same file when it still holds
that chunk (verified by its keyed id), and from the server otherwise, so a small edit
to a big file downloads only the chunks that changed.
"""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsops
from ..crypto.folder_keys import FolderKeys
from ..errors import ChunksyncError, IntegrityError
from ..objects import FileManifest, ObjectId, ObjectKind, TreeEntry, short_id
from ..paths import validate_relpath
from ..storage.index import FileState, Index
from .objects_io import ObjectReader
from .plan import Action

__all__ = ["Applier", "ApplyOutcome", "stat_state"]

FETCH_BYTES = 32 << 20


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

    def _check(self, path: str, expect: TreeEntry | None) -> Callable[[os.stat_result | None], None]:
        def check(current: os.stat_result | None) -> None:
            if not self._matches(path, expect, current):
                raise fsops.LocalChanged(f"{path} changed while syncing; rescanning")

        return check

    # --- content --------------------------------------------------------------------
    def _add_sources(self, base: Path, relpath: str, manifest_id: ObjectId | None) -> None:
        """Remember where a local file holds chunks, to copy them instead of downloading."""
        if manifest_id is None:
            return
        try:
            manifest = self.reader.load_manifest(manifest_id)
        except KeyError:
            return
        offset = 0
        for ref in manifest.chunks:
            self._sources.setdefault(ref.id, (base, relpath, offset, ref.size))
            offset += ref.size

    def _read_local(self, oid: ObjectId) -> bytes | None:
        base, relpath, offset, size = self._sources[oid]
        try:
            data = fsops.read_at(base, relpath, offset, size)
        except (OSError, ChunksyncError):
            return None
        return data if self.keys.verify_id(ObjectKind.CHUNK, data, oid) else None

    def _fetch_chunks(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        future = asyncio.run_coroutine_threadsafe(
            self.reader.fetch_blobs(ObjectKind.CHUNK, list(dict.fromkeys(ids))), self.loop
        )
        return future.result()

    def _blocks(self, manifest: FileManifest) -> Iterator[bytes]:
        """The file's content in order: chunks found locally (verified) are copied, the
        rest fetched in bounded batches."""
        refs = manifest.chunks
        start = 0
        while start < len(refs):
            end, size = start, 0
            while end < len(refs) and (end == start or size + refs[end].size <= FETCH_BYTES):
                size += refs[end].size
                end += 1
            batch = refs[start:end]
            have: dict[ObjectId, bytes] = {}
            for ref in batch:
                if ref.id in self._sources and ref.id not in have:
                    data = self._read_local(ref.id)
                    if data is not None:
                        have[ref.id] = data
            remote = [ref.id for ref in batch if ref.id not in have]
            if remote:
                have.update(self._fetch_chunks(remote))
            for ref in batch:
                data = have[ref.id]
                if len(data) != ref.size:
                    raise IntegrityError(f"chunk {short_id(ref.id)}: size does not match its manifest")
                yield data
            start = end

    # --- actions --------------------------------------------------------------------
    def run(self, actions: Sequence[Action]) -> ApplyOutcome:
        """Execute ``actions`` in order. Deleted files wait in the temp directory until
        the end, so a file moved or renamed on another device is rebuilt from local
        content instead of downloaded again."""
        outcome = ApplyOutcome()
        self._sources: dict[ObjectId, tuple[Path, str, int, int]] = {}
        self._trash: list[Path] = []
        try:
            for action in actions:
                validate_relpath(action.path)
                getattr(self, f"_do_{action.op}")(action, outcome)
        finally:
            for path in self._trash:
                path.unlink(missing_ok=True)
        outcome.bytes_down = self.reader.bytes_down
        return outcome

    def _do_write(self, action: Action, outcome: ApplyOutcome) -> None:
        entry = action.entry
        # B101: invariant for the type checker
        assert entry is not None and entry.id is not None  # nosec B101
        manifest = self.reader.load_manifest(entry.id)
        if action.expect is not None and action.expect.kind == "file":
            self._add_sources(self.root, action.path, action.expect.id)
        new_stat = fsops.write_file_at(
            self.root,
            self.tmpdir,
            action.path,
            self._blocks(manifest),
            executable=entry.executable,
            mtime_ns=entry.mtime_ns,
            check=self._check(action.path, action.expect),
        )
        outcome.states[action.path] = stat_state(action.path, new_stat, entry.id)
        outcome.written += 1

    def _do_set_meta(self, action: Action, outcome: ApplyOutcome) -> None:
        entry = action.entry
        # B101: invariant for the type checker
        assert entry is not None and entry.id is not None  # nosec B101
        self._check(action.path, action.expect)(fsops.lstat_at(self.root, action.path))
        parent, name = fsops.split(action.path)
        with fsops.open_dir(self.root, parent) as dfd:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            try:
                os.fchmod(fd, 0o755 if entry.executable else 0o644)
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
                new_stat = os.fstat(fd)
            finally:
                os.close(fd)
        outcome.states[action.path] = stat_state(action.path, new_stat, entry.id)

    def _do_mkdir(self, action: Action, outcome: ApplyOutcome) -> None:
        current = fsops.lstat_at(self.root, action.path)
        if current is not None and not stat.S_ISDIR(current.st_mode):
            raise fsops.LocalChanged(f"{action.path} is no longer what the plan saw; rescanning")
        fsops.mkdir_at(self.root, action.path)

    def _do_symlink(self, action: Action, outcome: ApplyOutcome) -> None:
        # B101: invariant for the type checker
        assert action.entry is not None and action.entry.target is not None  # nosec B101
        self._check(action.path, action.expect)(fsops.lstat_at(self.root, action.path))
        fsops.symlink_at(self.root, action.path, action.entry.target, action.entry.mtime_ns)
        outcome.removed.append(action.path)

    def _do_delete(self, action: Action, outcome: ApplyOutcome) -> None:
        current = fsops.lstat_at(self.root, action.path)
        self._check(action.path, action.expect)(current)
        if action.expect is not None and action.expect.kind == "file" and current is not None:
            # Move the file out first (atomic), then make sure what moved is what was
            # checked: an edit that slipped in between goes back, it is never deleted.
            self.tmpdir.mkdir(parents=True, exist_ok=True)
            kept = fsops.move_out(self.root, action.path, self.tmpdir, f"del-{uuid.uuid4().hex}")
            moved = os.lstat(kept)
            if (moved.st_ino, moved.st_size, moved.st_mtime_ns) != (
                current.st_ino, current.st_size, current.st_mtime_ns
            ):
                fsops.move_back(kept, self.root, action.path)
                raise fsops.LocalChanged(f"{action.path} changed while syncing; rescanning")
            self._trash.append(kept)
            self._add_sources(self.tmpdir, kept.name, action.expect.id)
        else:
            fsops.remove_at(self.root, action.path)
        outcome.removed.append(action.path)
        outcome.deleted += 1

    def _do_rmdir(self, action: Action, outcome: ApplyOutcome) -> None:
        fsops.rmdir_at(self.root, action.path)

    def _do_rename_local(self, action: Action, outcome: ApplyOutcome) -> None:
        assert action.dest is not None  # nosec B101  # invariant for the type checker
        validate_relpath(action.dest)
        self._check(action.path, action.expect)(fsops.lstat_at(self.root, action.path))
        fsops.rename_at(self.root, action.path, action.dest)
        outcome.removed.append(action.path)
        moved = fsops.lstat_at(self.root, action.dest)
        if moved is not None and stat.S_ISREG(moved.st_mode) and action.expect and action.expect.id:
            outcome.states[action.dest] = stat_state(action.dest, moved, action.expect.id)
            self._add_sources(self.root, action.dest, action.expect.id)
