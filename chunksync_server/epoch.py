"""The storage epoch: a token that changes whenever the server may have lost objects.

Clients cache which objects the server holds, so they upload only what is new. That
cache is right until the server loses something: a crash that loses the last writes
of its object index, damage that ``check --repair`` quarantines. The server cannot
always know what it lost, but it knows *when* it may have: at every start, and at
every repair. The epoch names that moment; a client whose last check of the head's
objects was made under another epoch checks again (one batched "missing" query) and
re-uploads what is gone (``chunksync.sync.heal``). A hostile server can withhold a
new epoch, but it can withhold objects anyway: availability is not what the client
relies on the server for.

The epoch is ``START.REPAIR``: a random token drawn when the process starts, and the
modification time of ``DATA/storage-repaired``, which ``check --repair`` (another
process) touches, so a running server picks a repair up without a restart.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

__all__ = ["REPAIR_MARK", "current_epoch", "mark_repaired", "start_token"]

REPAIR_MARK = "storage-repaired"


def start_token() -> str:
    return secrets.token_hex(8)


def current_epoch(data_dir: Path, start: str) -> str:
    try:
        repaired = os.stat(data_dir / REPAIR_MARK).st_mtime_ns
    except FileNotFoundError:
        return start
    return f"{start}.{repaired}"


def mark_repaired(data_dir: Path) -> None:
    """Record that objects may have been lost just now (tmp, fsync, rename).

    Called by ``check --repair`` and by the server for each damaged object it finds.
    The new mark's time is made later than the old one's even on a coarse clock, so
    every call changes the epoch.
    """
    mark = data_dir / REPAIR_MARK
    try:
        before = os.stat(mark).st_mtime_ns
    except FileNotFoundError:
        before = 0
    tmp = data_dir / f".{REPAIR_MARK}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(str(os.getpid()).encode())
        f.flush()
        os.fsync(f.fileno())
    stamp = max(time.time_ns(), before + 1)
    os.utime(tmp, ns=(stamp, stamp))
    os.replace(tmp, mark)
