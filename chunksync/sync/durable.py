"""Durability barriers for a batch of files, instead of two fsyncs per file.

Installing a downloaded file needs its content on disk before the rename that makes it
visible, and the rename on disk before the index records the file as synced. Done per
file, that is an fsync of the file and one of its directory: 40,000 barriers for 20,000
small files. A :class:`Barrier` gives the same order for a whole batch:

1. every temp file of the batch is written (no fsync);
2. :meth:`Barrier.files` — one ``syncfs(2)`` of the folder's filesystem (Linux), or an
   fsync of each temp file elsewhere;
3. the temp files are renamed into place;
4. :meth:`Barrier.dirs` — one more ``syncfs``, or one fsync per directory touched;
5. only then does the caller report the files as written (the index records them
   after the whole apply).

``syncfs`` reports a writeback error only to file descriptors opened before the error
(Linux ≥ 5.8), so the descriptor is opened when the barrier is made, before step 1. On
older kernels, which drop such errors, and on other systems, the per-file fsyncs run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from pathlib import Path
from typing import Self

from .. import fsops
from ..errors import ChunksyncError

__all__ = ["Barrier", "syncfs_available"]


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 8):
        return None  # syncfs errors were not reported before 5.8
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


def syncfs_available() -> bool:
    return _SYNCFS is not None


class Barrier:
    """The two barriers of one batch written under ``tmpdir`` and renamed into ``root``
    (same filesystem). Use as a context manager; the descriptor is opened on entry."""

    def __init__(
        self, root: Path, tmpdir: Path, pool: Executor, *, use_syncfs: bool = True
    ) -> None:
        self.root = root
        self.tmpdir = tmpdir
        self.pool = pool
        self.grouped = use_syncfs and _SYNCFS is not None
        self._fd: int | None = None

    def __enter__(self) -> Self:
        if self.grouped:
            self.tmpdir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.tmpdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _syncfs(self) -> None:
        # B101: invariant for the type checker
        assert _SYNCFS is not None and self._fd is not None  # nosec B101
        if _SYNCFS(self._fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))  # mapped by the caller

    def files(self, tmpnames: Iterable[str]) -> None:
        """Make the content of these temp files durable (before any is renamed)."""
        try:
            if self.grouped:
                self._syncfs()
            else:
                list(self.pool.map(lambda name: _fsync_path(self.tmpdir / name), list(tmpnames)))
        except OSError as exc:
            raise _failed(exc) from exc

    def dirs(self, reldirs: Iterable[str]) -> None:
        """Make the renames into these directories of ``root`` durable."""
        try:
            if self.grouped:
                self._syncfs()
            else:
                list(self.pool.map(self._fsync_dir, sorted(set(reldirs))))
        except OSError as exc:
            raise _failed(exc) from exc

    def _fsync_dir(self, reldir: str) -> None:
        with fsops.open_dir(self.root, reldir) as dfd:
            os.fsync(dfd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _failed(exc: OSError) -> ChunksyncError:
    """A failed barrier: nothing of the batch is recorded as synced."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return fsops.DiskFullError(f"disk full while saving downloaded files: {why}")
    return ChunksyncError(f"cannot make downloaded files durable: {why}")
