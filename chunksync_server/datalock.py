"""One ``serve`` per data directory: an exclusive ``flock`` on ``DATA/serve.lock``.

Two servers on one data directory would each keep their own view of the object store
(only one can hold ``objects/writer.lock``; the other would silently serve read-only)
and their own rate limits and WebSocket hub. ``serve`` takes this lock before it opens
anything and holds it for its lifetime; the kernel drops it when the process dies, so
a crash never leaves a stale lock. The holder's pid is written in the file for the
message. Admin commands do not take it (they work beside a running server, see
:mod:`chunksync_server.admin`); the ones that must run alone (``migrate --rollback``)
take it too, and ``check --repair`` / ``folder delete`` test the store's writer lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from chunksync.errors import UserError

__all__ = ["LOCK_FILE", "DataDirBusy", "DataDirLock"]

LOCK_FILE = "serve.lock"


class DataDirBusy(UserError):
    """Another process holds the data directory."""


class DataDirLock:
    """``with DataDirLock(data_dir, purpose):`` — or DataDirBusy naming the holder."""

    __slots__ = ("data_dir", "fd", "purpose")

    def __init__(self, data_dir: Path, purpose: str = "serve") -> None:
        self.data_dir = data_dir
        self.purpose = purpose
        self.fd: int | None = None

    def acquire(self) -> DataDirLock:
        path = self.data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "pid ?"
            os.close(fd)
            raise DataDirBusy(
                f"cannot {self.purpose}: another chunksync-server ({holder}) is using "
                f"{self.data_dir}; stop it first, or use another --data"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} {self.purpose}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
