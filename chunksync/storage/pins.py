"""Pins: roots a running command is reading, which index eviction must not remove.

A ``restore`` (or ``log PATH``) in another process reads trees and manifests from the
index while the daemon may be evicting old ones (:mod:`chunksync.storage.upkeep`).
Such a command pins the roots it reads: one file per pin in ``.chunksync/pins/``
(named by pid and a random token, holding one hex root per line). Files, not index
rows, so that a crashed command's pin is recognised (its pid is gone) and dropped
without any write to the index.

Ordering, so that no read can see a root present and then lose it: a pin is written
*before* the command reads, and then waits for any index writer in progress (an empty
write transaction). An eviction pass re-reads the pins inside its write transaction
and gives up if they changed since it computed what is live; so either it saw the pin,
or it committed before the command's first read, which then finds the evicted objects
missing and fetches them from the server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..objects import ObjectId, id_from_hex, is_hex_id
from .index import Index

__all__ = ["Pin", "pinned", "pins_dir", "read_pins"]


def pins_dir(index_path: Path) -> Path:
    """``.chunksync/pins`` beside the index directory."""
    return index_path.parent / "pins"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Pin:
    """A pin file; :meth:`add` pins more roots (each before they are read)."""

    def __init__(self, index: Index) -> None:
        self.index = index
        folder = pins_dir(index.path)
        folder.mkdir(mode=0o700, exist_ok=True)
        self.path = folder / f"{os.getpid()}-{secrets.token_hex(6)}.pin"
        self.roots: list[ObjectId] = []

    def add(self, roots: Iterable[ObjectId | None]) -> None:
        new = [r for r in roots if r is not None and r not in self.roots]
        if not new:
            return
        self.roots.extend(new)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(r.hex() + "\n" for r in self.roots))
        os.replace(tmp, self.path)
        with self.index.write():
            pass  # wait for an eviction pass in progress (see the module docstring)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@contextlib.contextmanager
def pinned(index: Index, roots: Iterable[ObjectId | None] = ()) -> Iterator[Pin]:
    """Pin ``roots`` (and whatever is added to the pin) for the block's duration."""
    pin = Pin(index)
    try:
        pin.add(roots)
        yield pin
    finally:
        pin.release()


def read_pins(index_path: Path) -> frozenset[ObjectId]:
    """Every root pinned by a live process; pins of dead processes are removed."""
    out: set[ObjectId] = set()
    folder = pins_dir(index_path)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return frozenset()
    for name in names:
        if not name.endswith(".pin"):
            continue
        pid_text = name.split("-", 1)[0]
        path = folder / name
        if not pid_text.isdigit() or not _alive(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        try:
            lines = path.read_text().split()
        except (FileNotFoundError, UnicodeError):
            continue
        out.update(id_from_hex(line) for line in lines if is_hex_id(line))
    return frozenset(out)
