"""Reading the files a scan found changed: chunk, hash, manifest (phase 2 of a scan).

Runs on a small thread pool (:func:`chunksync.scanjobs.read_all`). A file
counts as read only if its fstat after reading equals the stat taken before; it is
retried up to :data:`READ_ATTEMPTS` times, then reported as changed (see
:mod:`chunksync.scanner` for what the scan does with that).
"""

from __future__ import annotations

import os
import stat as st_mod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import FileIO
from typing import NamedTuple

from .chunker import Chunker
from .crypto.folder_keys import FolderKeys
from .objects import ChunkRef, FileManifest, ObjectId
from .storage.index import FileState

__all__ = ["RACY_NS", "READ_ATTEMPTS", "OnChunk"]

RACY_NS = 2_000_000_000
READ_ATTEMPTS = 3

OnChunk = Callable[[ObjectId, bytes | memoryview], None]


class _Stat(NamedTuple):
    """The fields of a stat the scan compares, named as in ``os.stat_result``: a full
    stat_result is ~10x larger, and one is held per file to read until it is read."""

    st_size: int
    st_mtime_ns: int
    st_ctime_ns: int
    st_ino: int
    st_mode: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Stat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


@dataclass(frozen=True, slots=True)
class _FileJob:
    rel: str
    disk: str
    stat: _Stat
    prev: FileState | None


@dataclass(frozen=True, slots=True)
class _Read:
    """Outcome of reading one file: a new state, or why the previous one is kept."""

    state: FileState | None
    manifest: bytes = b""
    bytes_read: int = 0
    problem: str = ""  # "changed" or a warning text


def _same_stat(a: os.stat_result | _Stat, b: os.stat_result | _Stat) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_ino, a.st_mode) == (
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
        b.st_ino,
        b.st_mode,
    )


class _Reader:
    """Reads, chunks and hashes one file; safe to call from several threads."""

    def __init__(self, keys: FolderKeys, chunker: Chunker, on_chunk: OnChunk | None, now: int):
        self.keys, self.chunker, self.on_chunk, self.now = keys, chunker, on_chunk, now

    def _chunks(self, fd: int, size: int) -> Iterator[bytes | memoryview]:
        """The file's chunks. A file below the chunker's minimum is one chunk by
        definition, so it is read with one call and never goes through the chunker
        (most files of a source tree). Reading one byte past ``size`` notices a file
        that grew meanwhile; the caller's stat check then retries it."""
        if size < self.chunker.params.min_size:
            parts = []
            want = size + 1
            while want > 0 and (part := os.read(fd, want)):
                parts.append(part)
                want -= len(part)
            if parts:
                yield b"".join(parts)
            return
        with FileIO(fd, "rb", closefd=False) as stream:
            for _off, view in self.chunker.iter_chunk_spans(stream, size):
                yield view

    def __call__(self, job: _FileJob) -> _Read:
        """Read one file into a manifest, or say why not.

        The file counts as read consistently when its fstat after reading equals the
        stat taken before (by the directory walk on the first attempt): same inode,
        size, mtime and ctime, so no write happened in between. A file replaced by a
        rename meanwhile was still read whole and consistently (the old inode); the
        next scan sees the new one.
        """
        total = 0
        before = job.stat
        for _attempt in range(READ_ATTEMPTS):
            try:
                # O_NONBLOCK: a file swapped for a fifo since the walk must not hang us
                fd = os.open(job.disk, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            except FileNotFoundError:
                return _Read(None, problem="vanished")
            except OSError as exc:
                return _Read(None, problem=f"cannot read ({exc.strerror})")
            try:
                if not st_mod.S_ISREG(before.st_mode):
                    return _Read(None, problem="changed")
                refs = []
                for view in self._chunks(fd, before.st_size):
                    cid = self.keys.chunk_id(view)
                    if self.on_chunk is not None:
                        self.on_chunk(cid, view)
                    refs.append(ChunkRef(cid, len(view)))
                after = os.fstat(fd)
            finally:
                os.close(fd)
            size = sum(r.size for r in refs)
            total += size
            if _same_stat(before, after) and size == after.st_size:
                manifest = FileManifest(size, tuple(refs)).encode()
                state = FileState(
                    job.rel,
                    size,
                    after.st_mtime_ns,
                    after.st_ctime_ns,
                    after.st_ino,
                    after.st_mode,
                    self.keys.meta_id(manifest),
                    racy=after.st_mtime_ns >= self.now - RACY_NS,
                )
                return _Read(state, manifest, total)
            before = _Stat.of(after)  # changed while read: try again against the newer stat
        return _Read(None, bytes_read=total, problem="changed")
