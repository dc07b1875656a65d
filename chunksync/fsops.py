"""Safe, atomic filesystem operations on a synced folder.

Two guarantees the rest of the client builds on:

* **Atomic replacement.** New content is written to a temp file in ``.chunksync/tmp``
  (same filesystem), fsynced, given its mode and mtime, and only then renamed over the
  final name; the directory is fsynced after. A crash leaves either the old file or the
  new one, plus a temp file that the next run sweeps (:mod:`chunksync.fsinstall`).
* **No escape from the folder.** Every path is resolved component by component with
  directory file descriptors opened ``O_NOFOLLOW``, so a symlink planted inside the
  folder (or a hostile name from the server) can never redirect a write or a delete
  outside it.

A full disk or any other OSError while writing is reported as a one-line
:class:`~chunksync.errors.ChunksyncError` and leaves the old file untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import ChunksyncError, UnsafePathError

__all__ = [
    "DiskFullError",
    "LocalChanged",
    "atomic_write_bytes",
    "lstat_at",
    "move_back",
    "move_out",
    "open_dir",
    "read_at",
    "readlink_at",
    "remove_at",
    "rename_at",
    "rmdir_at",
    "set_meta_at",
    "sweep_tmp",
    "symlink_at",
]

STATE_DIR_NAME = ".chunksync"
"""The per-folder state directory; its presence marks a synced folder."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class DiskFullError(ChunksyncError):
    exit_code = 9


class LocalChanged(ChunksyncError):
    """A local file changed after the scan: the engine re-plans instead of touching it."""


def _os_error(action: str, path: str, exc: OSError) -> ChunksyncError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"disk full while {action} {path}: nothing was replaced")
    return ChunksyncError(f"cannot {action} {path}: {exc.strerror or exc}")


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write a small state file atomically with the given permission bits."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _os_error("writing", str(path), exc) from exc


def _fsync_dir(path: Path | int) -> None:
    fd = os.open(path, _DIR_FLAGS) if not isinstance(path, int) else path
    try:
        os.fsync(fd)
    finally:
        if not isinstance(path, int):
            os.close(fd)


@contextlib.contextmanager
def open_dir(root: Path, reldir: str, *, create: bool = False) -> Iterator[int]:
    """A directory fd for ``reldir`` under ``root``, walked without following symlinks.

    Raises UnsafePathError when a component is a symlink or not a directory.
    """
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in [p for p in reldir.split("/") if p]:
            part = _entry(fd, part)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError(
                        f"refusing to write through '{reldir}': '{part}' is not a plain directory"
                    ) from exc
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _entry(dfd: int, name: str) -> str:
    """The on-disk spelling of ``name`` in a directory, equal up to Unicode normalization.

    Trees store names NFC; a file created elsewhere may be spelled NFD on this disk
    (copied from macOS, say). ASCII names, and names that exist as given, need no search.
    """
    if name.isascii():
        return name
    try:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
        return name
    except FileNotFoundError:
        pass
    wanted = unicodedata.normalize("NFC", name)
    for candidate in os.listdir(dfd):
        if unicodedata.normalize("NFC", candidate) == wanted:
            return candidate
    return name


def split(relpath: str) -> tuple[str, str]:
    head, _, name = relpath.rpartition("/")
    return head, name


def lstat_at(root: Path, relpath: str) -> os.stat_result | None:
    """lstat of a path inside the folder, or None when it (or a parent) is absent."""
    parent, name = split(relpath)
    try:
        with open_dir(root, parent) as dfd:
            return os.stat(_entry(dfd, name), dir_fd=dfd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError, UnsafePathError):
        return None


def _free_name(dfd: int, name: str) -> str:
    stem, ext = os.path.splitext(name)
    candidate, n = name, 1
    while _stat_or_none(dfd, candidate) is not None:
        n += 1
        candidate = f"{stem} (kept by chunksync {n}){ext}"
    return candidate


def _stat_or_none(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def read_at(root: Path, relpath: str, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of a regular file in the folder (never via a symlink)."""
    parent, name = split(relpath)
    with open_dir(root, parent) as dfd:
        fd = os.open(
            _entry(dfd, name),
            os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
            dir_fd=dfd,
        )
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)


def readlink_at(root: Path, relpath: str) -> str:
    parent, name = split(relpath)
    with open_dir(root, parent) as dfd:
        return os.readlink(_entry(dfd, name), dir_fd=dfd)


def symlink_at(root: Path, relpath: str, target: str, mtime_ns: int | None = None) -> None:
    """Create or replace a symlink atomically; it is never followed."""
    parent, name = split(relpath)
    with open_dir(root, parent, create=True) as dfd:
        tmpname = f".{name}.{uuid.uuid4().hex[:8]}.lnk"
        os.symlink(target, tmpname, dir_fd=dfd)
        if mtime_ns is not None:
            os.utime(tmpname, ns=(mtime_ns, mtime_ns), dir_fd=dfd, follow_symlinks=False)
        os.rename(tmpname, _entry(dfd, name), src_dir_fd=dfd, dst_dir_fd=dfd)


def set_meta_at(root: Path, relpath: str, executable: bool, mtime_ns: int) -> os.stat_result:
    """Set a file's exec bit and mtime, never following a symlink, whatever the disk's
    spelling of the name (NFC in trees, maybe NFD here); returns its new stat."""
    parent, name = split(relpath)
    with open_dir(root, parent) as dfd:
        fd = os.open(_entry(dfd, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            os.fchmod(fd, 0o755 if executable else 0o644)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
            return os.fstat(fd)
        finally:
            os.close(fd)


def mkdir_at(root: Path, relpath: str) -> None:
    with open_dir(root, relpath, create=True):
        pass


def remove_at(root: Path, relpath: str) -> None:
    parent, name = split(relpath)
    with open_dir(root, parent) as dfd:
        name = _entry(dfd, name)
        st = _stat_or_none(dfd, name)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            raise ChunksyncError(f"cannot delete {relpath}: it is a directory now")
        os.unlink(name, dir_fd=dfd)


def move_out(root: Path, relpath: str, dest_dir: Path, dest_name: str) -> Path:
    """Move a file out of the folder into ``dest_dir`` (same filesystem), e.g. to keep a
    deleted file's content at hand until the end of a sync; returns its new path."""
    parent, name = split(relpath)
    with open_dir(root, parent) as sfd, open_dir(dest_dir, "") as dfd:
        name = _entry(sfd, name)
        st = _stat_or_none(sfd, name)
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise ChunksyncError(f"cannot delete {relpath}: it is a directory now")
        os.rename(name, dest_name, src_dir_fd=sfd, dst_dir_fd=dfd)
    return dest_dir / dest_name


def move_back(source: Path, root: Path, relpath: str) -> str:
    """Return a file taken out by :func:`move_out` to ``relpath``, or beside it when that
    name is taken meanwhile; returns where it went. Never replaces anything."""
    parent, name = split(relpath)
    with open_dir(source.parent, "") as sfd, open_dir(root, parent, create=True) as dfd:
        candidate = _free_name(dfd, name)
        os.rename(source.name, candidate, src_dir_fd=sfd, dst_dir_fd=dfd)
    return f"{parent}/{candidate}" if parent else candidate


def rmdir_at(root: Path, relpath: str) -> bool:
    """Remove an empty directory; a non-empty one is kept (never a recursive delete)."""
    parent, name = split(relpath)
    try:
        with open_dir(root, parent) as dfd:
            os.rmdir(_entry(dfd, name), dir_fd=dfd)
        return True
    except (FileNotFoundError, UnsafePathError):
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise


def rename_at(root: Path, src: str, dst: str) -> None:
    """Rename within the folder, refusing to replace anything at ``dst``."""
    sparent, sname = split(src)
    dparent, dname = split(dst)
    with open_dir(root, sparent) as sfd, open_dir(root, dparent, create=True) as dfd:
        if _stat_or_none(dfd, _entry(dfd, dname)) is not None:
            raise LocalChanged(f"{dst} appeared while syncing")
        os.rename(_entry(sfd, sname), dname, src_dir_fd=sfd, dst_dir_fd=dfd)


def sweep_tmp(tmpdir: Path) -> int:
    """Delete partial downloads left by a crash; returns how many."""
    count = 0
    if tmpdir.is_dir():
        for entry in os.scandir(tmpdir):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                count += 1
    return count
