"""Very deep directory chains on disk, made, read and removed without recursion.

A chain of 2,000 one-letter directories is about 4,000 characters long below the
folder, so these helpers never pass a whole path to the OS: they open each level
relative to its parent (``dir_fd``), or a path relative to the folder's fd. They walk
with explicit stacks, because ``os.walk`` and ``shutil.rmtree`` recurse (Python 3.11)
and would hit the recursion limit themselves. Each holds at most two fds at a time.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
STATE = ".chunksync"


def chain_path(depth: int, leaf: str, name: str = "d") -> str:
    """The relative path of ``leaf`` at the bottom of ``depth`` directories ``name``."""
    return "/".join([name] * depth + [leaf])


def _walk_to(root: Path, reldir: str, *, create: bool = False) -> int:
    """An fd for ``reldir`` below ``root``, one component at a time."""
    fd = os.open(root, _DIR)
    try:
        for part in [p for p in reldir.split("/") if p]:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            child = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_deep(root: Path, relpath: str, data: bytes) -> None:
    """Create ``relpath`` (and every missing directory above it) holding ``data``."""
    parent, _, name = relpath.rpartition("/")
    fd = _walk_to(root, parent, create=True)
    try:
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644, dir_fd=fd)
        try:
            os.write(out, data)
        finally:
            os.close(out)
    finally:
        os.close(fd)


def read_deep(root: Path, relpath: str) -> bytes:
    parent, _, name = relpath.rpartition("/")
    fd = _walk_to(root, parent)
    try:
        inp = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        try:
            return os.read(inp, 1 << 24)
        finally:
            os.close(inp)
    finally:
        os.close(fd)


def _open_rel(base: int, reldir: str) -> int:
    """A directory below the fd ``base``, opened by its relative path in one call (a
    chain of 2,000 one-letter names stays below PATH_MAX; the whole path may not)."""
    return os.open(reldir or ".", _DIR, dir_fd=base)


def _listing(root: Path) -> list[tuple[str, os.stat_result, bytes | str | None]]:
    """(relpath, lstat, content or link target) of every entry below ``root`` except
    ``.chunksync``, parents before children, by name."""
    out: list[tuple[str, os.stat_result, bytes | str | None]] = []
    top = os.open(root, _DIR)
    try:
        stack = [""]
        while stack:
            reldir = stack.pop()
            fd = _open_rel(top, reldir)
            try:
                subdirs = []
                for name in sorted(os.listdir(fd)):
                    if not reldir and name == STATE:
                        continue
                    rel = f"{reldir}/{name}" if reldir else name
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        out.append((rel, st, None))
                        subdirs.append(rel)
                    elif stat.S_ISLNK(st.st_mode):
                        out.append((rel, st, os.readlink(name, dir_fd=fd)))
                    else:
                        inp = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                        try:
                            out.append((rel, st, os.read(inp, 1 << 24)))
                        finally:
                            os.close(inp)
                stack.extend(reversed(subdirs))
            finally:
                os.close(fd)
    finally:
        os.close(top)
    return sorted(out, key=lambda item: item[0])


def deep_tree_of(root: Path, *, mtimes: bool = True) -> dict[str, Any]:
    """Like :func:`tests.helpers.devices.tree_of`, for folders of any depth."""
    described: dict[str, Any] = {}
    for rel, st, content in _listing(root):
        if stat.S_ISDIR(st.st_mode):
            described[rel] = ("dir",)
        elif stat.S_ISLNK(st.st_mode):
            described[rel] = ("symlink", content)
        else:
            desc: tuple[Any, ...] = ("file", content, bool(st.st_mode & 0o100))
            described[rel] = desc + ((st.st_mtime_ns,) if mtimes else ())
    return described


def remove_deep(root: Path, reldir: str) -> None:
    """Delete the directory ``reldir`` below ``root`` and everything in it, bottom up."""
    top = os.open(root, _DIR)
    try:
        dirs = [reldir]
        stack = [reldir]
        while stack:  # unlink the files, list every directory (parents first)
            rel = stack.pop()
            fd = _open_rel(top, rel)
            try:
                for name in os.listdir(fd):
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        dirs.append(f"{rel}/{name}")
                        stack.append(f"{rel}/{name}")
                    else:
                        os.unlink(name, dir_fd=fd)
            finally:
                os.close(fd)
        for rel in reversed(dirs):  # children before their parents
            parent, _, name = rel.rpartition("/")
            fd = _open_rel(top, parent)
            try:
                os.rmdir(name, dir_fd=fd)
            finally:
                os.close(fd)
    finally:
        os.close(top)
