"""Writing a downloaded file to a temp file and renaming it into place, re-checked.

The atomic-replacement half of :mod:`chunksync.fsops`: content goes to a fresh temp file
in ``.chunksync/tmp`` (same filesystem), gets its mode and mtime, is made durable (here,
or by the caller's grouped barrier: :mod:`chunksync.sync.durable`), and only then is
renamed over the final name after a last re-check of what is there, with the replaced
file held by a hard link until the rename is done, so an edit that lands in between is
kept, never lost. A failure removes the temp file and reads as one clear line.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .fsops import LocalChanged, _entry, _free_name, _os_error, _stat_or_none, open_dir, split

__all__ = ["Install", "install_temp", "install_temps", "write_file_at", "write_temp"]


def write_file_at(
    root: Path,
    tmpdir: Path,
    relpath: str,
    blocks: Iterable[bytes],
    *,
    executable: bool,
    mtime_ns: int,
    check: callable | None = None,  # type: ignore[valid-type]
) -> os.stat_result:
    """Write ``blocks`` to ``relpath`` atomically; returns the new file's stat.

    ``check(current_stat_or_None)`` runs just before the rename and may raise
    LocalChanged to abandon the write (the temp file is removed). One file, two fsyncs:
    :mod:`chunksync.sync.download` groups the barriers of many files instead."""
    tmpname, written = write_temp(
        tmpdir, relpath, blocks, executable=executable, mtime_ns=mtime_ns, durable=True
    )
    return install_temp(root, tmpdir, tmpname, relpath, written, check=check, sync_dir=True)


@contextlib.contextmanager
def _temp_removed_on_error(tmpdir: Path, tmpname: str, relpath: str) -> Iterator[None]:
    """On any failure the temp file goes, and an OSError becomes one clear line."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmpdir / tmpname)
        if isinstance(exc, OSError):
            raise _os_error("writing", relpath, exc) from exc
        raise


def write_temp(
    tmpdir: Path,
    relpath: str,
    blocks: Iterable[bytes],
    *,
    executable: bool,
    mtime_ns: int,
    durable: bool,
    tmpfd: int | None = None,
) -> tuple[str, os.stat_result]:
    """Write a new file's content, mode and mtime to a fresh temp file in ``tmpdir``;
    returns its name and stat. ``durable=False`` leaves the fsync to the caller (one
    barrier for a whole batch, before any of it is renamed into place). ``tmpfd``, an
    open descriptor of ``tmpdir``, spares a batch of writes the mkdir and open per file."""
    with contextlib.ExitStack() as stack:
        if tmpfd is None:
            tmpdir.mkdir(parents=True, exist_ok=True)
            tmpfd = stack.enter_context(open_dir(tmpdir, ""))
        tmpname = f"dl-{uuid.uuid4().hex}"
        stack.enter_context(_temp_removed_on_error(tmpdir, tmpname, relpath))
        fd = os.open(
            tmpname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=tmpfd
        )
        try:
            for block in blocks:
                _write_all(fd, block)
            os.fchmod(fd, 0o755 if executable else 0o644)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
            if durable:
                os.fsync(fd)
            return tmpname, os.fstat(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, block: bytes) -> None:
    """One block, straight to the descriptor (no buffered file object per file)."""
    view = memoryview(block)
    while view:
        view = view[os.write(fd, view) :]


def install_temp(
    root: Path,
    tmpdir: Path,
    tmpname: str,
    relpath: str,
    written: os.stat_result,
    *,
    check: callable | None = None,  # type: ignore[valid-type]
    sync_dir: bool,
) -> os.stat_result:
    """Rename a durable temp file from :func:`write_temp` over ``relpath`` after ``check``,
    holding the replaced file (:func:`_hold`); ``sync_dir=False`` leaves the directory
    fsync to the caller. Returns the stat taken *after* the rename if it is still the file
    written (a rename changes the ctime, and a stale one makes the next scan re-read the
    file), else ``written``."""
    with (
        _temp_removed_on_error(tmpdir, tmpname, relpath),
        open_dir(tmpdir, "") as tfd,
        open_dir(root, split(relpath)[0], create=True) as dfd,
    ):
        return _install(tfd, dfd, Install(tmpname, relpath, written, check), sync_dir=sync_dir)


@dataclass(frozen=True, slots=True)
class Install:
    """One durable temp file to rename over ``relpath`` (see :func:`install_temps`)."""

    tmpname: str
    relpath: str
    written: os.stat_result
    check: Callable[[os.stat_result | None], None] | None = None


def install_temps(
    root: Path, tmpdir: Path, parent: str, items: Sequence[Install]
) -> list[os.stat_result]:
    """:func:`install_temp` for several files of one directory ``parent``, each with its
    own re-check and hold, under one walk to the directory instead of one per file; the
    directory fsync is left to the caller. Stops at the first failure (that file's temp
    file removed), returning nothing: files renamed before it stay, unrecorded, and the
    next scan sees them."""
    with open_dir(tmpdir, "") as tfd, open_dir(root, parent, create=True) as dfd:
        out = []
        for item in items:
            with _temp_removed_on_error(tmpdir, item.tmpname, item.relpath):
                out.append(_install(tfd, dfd, item, sync_dir=False))
        return out


def _install(tfd: int, dfd: int, item: Install, *, sync_dir: bool) -> os.stat_result:
    target = _entry(dfd, split(item.relpath)[1])
    current = _stat_or_none(dfd, target)
    if item.check is not None:
        item.check(current)
    held = _hold(dfd, target, tfd, current)
    os.rename(item.tmpname, target, src_dir_fd=tfd, dst_dir_fd=dfd)
    if sync_dir:
        os.fsync(dfd)
    if held is not None:
        _release(held, current, tfd, dfd, target)
    after = _stat_or_none(dfd, target)
    written = item.written
    # only the ctime may have moved; else an edit slipped in: the scan must read it
    if after is not None and (
        after.st_ino,
        after.st_size,
        after.st_mtime_ns,
        after.st_mode,
    ) == (written.st_ino, written.st_size, written.st_mtime_ns, written.st_mode):
        return after
    return written


def _hold(dfd: int, name: str, tfd: int, current: os.stat_result | None) -> str | None:
    """Hard-link the file about to be replaced into the temp dir, so an edit that lands
    between the re-check and the rename is still there afterwards (None: nothing to
    hold, or a filesystem without hard links)."""
    if current is None or not stat.S_ISREG(current.st_mode):
        return None
    held = f"old-{uuid.uuid4().hex}"
    try:
        os.link(name, held, src_dir_fd=dfd, dst_dir_fd=tfd, follow_symlinks=False)
    except OSError:
        return None
    return held


def _release(held: str, checked: os.stat_result | None, tfd: int, dfd: int, name: str) -> None:
    """Drop the held old version, unless it changed after the check: then keep it beside
    the new file under a free name, and make the engine rescan."""
    st = os.stat(held, dir_fd=tfd)
    assert checked is not None  # nosec B101  # invariant for the type checker
    if (st.st_ino, st.st_size, st.st_mtime_ns) == (
        checked.st_ino,
        checked.st_size,
        checked.st_mtime_ns,
    ):
        os.unlink(held, dir_fd=tfd)
        return
    kept = _free_name(dfd, name)
    os.rename(held, kept, src_dir_fd=tfd, dst_dir_fd=dfd)
    raise LocalChanged(f"{name} was edited while being replaced; the edit is kept as '{kept}'")
