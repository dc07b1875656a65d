"""The pack files of a :class:`~chunksync_server.storage.packs.PackObjectStore`: where each pack
lives, the descriptors kept open to append to and read from them, and reading one
object's bytes.

Why a class of its own: descriptors opened while the store was a read-only view are
``O_RDONLY`` and useless for appending, so becoming the writer retires them (they stay
open until close, since a reader thread may be using one this very moment). A read
that finds the bytes gone — the pack file deleted or cut short — raises
:class:`PackGone`, which the store treats as damage to quarantine, not as an I/O error.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

from .base import StorageError
from .packio import ensure_dir, fsync_dir

__all__ = ["MAX_CACHED_FDS", "PackFiles", "PackGone", "pack_number"]

MAX_CACHED_FDS = 512  # packs kept open for reading; others are opened per read
RETIRE_GRACE = 5.0  # seconds a retired pack's descriptor stays open for reads in flight


class PackGone(StorageError):
    """The object's bytes are not in its pack (cut short or deleted): damage, not I/O."""


def pack_number(path: Path) -> int | None:
    """The number of a ``<n>.pack`` file, None for anything else."""
    return int(path.stem) if path.suffix == ".pack" and path.stem.isdigit() else None


class PackFiles:
    """Thread-safe descriptor cache over ``root/<ns>/packs/<n>.pack``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()  # guards every field below
        self._fds: dict[tuple[str, int], int] = {}
        self._retired: list[int] = []  # read-only descriptors replaced on becoming writer
        self._dying: list[tuple[float, int]] = []  # (retired at, fd) of unlinked packs
        self._writable = False
        self._closed = False

    def path(self, ns: str, pack: int) -> Path:
        return self.root / ns / "packs" / f"{pack}.pack"

    def newest(self, ns: str) -> tuple[int, int]:
        """The number of the namespace's newest pack (0 if none) and its size in bytes."""
        packs = self.root / ns / "packs"
        numbers = [n for p in packs.glob("*.pack") if (n := pack_number(p)) is not None]
        newest = max(numbers, default=0)
        path = packs / f"{newest}.pack"
        return newest, path.stat().st_size if path.exists() else 0

    def become_writable(self) -> None:
        """From now on open packs for writing; retire the read-only descriptors."""
        with self._lock:
            self._retired.extend(self._fds.values())
            self._fds.clear()
            self._writable = True

    def append_fd(self, ns: str, pack: int) -> int:
        """The (cached) descriptor to append to a pack, creating the pack durably."""
        with self._lock:
            self._live()
            fd = self._fds.get((ns, pack))
            if fd is None:
                path = self.path(ns, pack)
                ensure_dir(path.parent)
                existed = path.exists()
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                if not existed:
                    fsync_dir(path.parent)
                self._fds[(ns, pack)] = fd
            return fd

    def read(self, ns: str, pack: int, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``; PackGone if they are not all there."""
        fd: int | None = None
        transient = False
        try:
            fd = self._read_fd(ns, pack)
            if fd is None:  # too many packs to keep open: open this one for this read
                fd, transient = os.open(self.path(ns, pack), os.O_RDONLY), True
            blob = os.pread(fd, length, offset)
        except FileNotFoundError as exc:
            raise PackGone(f"pack {ns}/{pack} is gone") from exc
        except OSError as exc:
            if exc.errno == errno.EBADF:  # retired by a compaction meanwhile
                raise PackGone(f"pack {ns}/{pack} is gone") from exc
            raise StorageError(f"cannot read pack {ns}/{pack}: {exc.strerror}") from exc
        finally:
            if transient and fd is not None:
                os.close(fd)
        if len(blob) != length:
            raise PackGone(f"pack {ns}/{pack} ends before offset {offset + length}")
        return blob

    def retire(self, ns: str, pack: int) -> None:
        """Forget a pack about to be unlinked (compaction). Its descriptor is closed a few
        seconds later, not now: a read in flight may still be using it, and closing it
        under that read could hand its number to another file. Until then the unlinked
        pack's space is still held."""
        with self._lock:
            fd = self._fds.pop((ns, pack), None)
            if fd is None or self._closed:
                return
            self._dying.append((time.monotonic(), fd))
        timer = threading.Timer(RETIRE_GRACE, self._reap)
        timer.daemon = True
        timer.start()

    def _reap(self) -> None:
        """Close the retired descriptors whose grace is over."""
        with self._lock:
            if self._closed:
                return
            now, keep = time.monotonic(), []
            for since, fd in self._dying:
                if now - since >= RETIRE_GRACE - 0.05:
                    os.close(fd)
                else:
                    keep.append((since, fd))
            self._dying = keep

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in [*self._fds.values(), *self._retired, *(fd for _, fd in self._dying)]:
                os.close(fd)
            self._fds.clear()
            self._retired.clear()
            self._dying.clear()

    def _live(self) -> None:
        if self._closed:
            raise StorageError("object store is closed")

    def _read_fd(self, ns: str, pack: int) -> int | None:
        """The cached descriptor to read a pack; None once the cache is full."""
        with self._lock:
            self._live()
            fd = self._fds.get((ns, pack))
            if fd is None and len(self._fds) < MAX_CACHED_FDS:
                flags = os.O_RDWR if self._writable else os.O_RDONLY
                fd = self._fds[(ns, pack)] = os.open(self.path(ns, pack), flags)
            return fd
