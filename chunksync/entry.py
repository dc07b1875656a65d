"""The ``chunksync`` console script: run the CLI, then leave without tearing Python down.

Once a command has returned, everything it must leave behind is on disk: index commits
are durable when they return (LMDB syncs on commit), files are renamed into place after
their barriers, and the event loop, its executor and every worker pool have been shut
down. What interpreter finalization would still do is free every object and module one
by one, a quarter of a second after a large ``restore`` and tens of milliseconds after a
no-change ``sync``, all of it after the work is done. So :func:`main` waits for any
thread that is not a daemon (as finalization would), flushes the standard streams and
logging, and ends the process with the command's exit status (``os._exit``).

The cyclic garbage collector's first threshold is raised too (:data:`GC_THRESHOLD`):
at the default 700 a ``restore`` of 2,000 files ran 176 collections, about 8 % of its
CPU, for the few cycles that a command leaves behind.

And glibc's malloc is told to serve every block of :data:`MMAP_THRESHOLD` or more with
its own mapping (:func:`return_big_blocks`). By default that threshold grows to the
largest block freed so far, so after the first few chunk-sized buffers every later one
came from the heap and stayed there when freed: an initial sync's peak RSS was ~45 MiB
higher than the blobs it held at any time.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from typing import NoReturn

__all__ = ["GC_THRESHOLD", "MMAP_THRESHOLD", "exit_status", "main", "return_big_blocks"]

GC_THRESHOLD = 20_000  # container allocations between young collections (default 700)
MMAP_THRESHOLD = 128 << 10  # glibc's initial value, fixed (M_MMAP_THRESHOLD)
_M_MMAP_THRESHOLD = -3  # mallopt parameter number, <malloc.h>


def return_big_blocks() -> bool:
    """Fix glibc's mmap threshold (see the module docstring); False where there is no
    glibc ``mallopt`` (other C libraries, other systems)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def exit_status(code: object) -> int:
    """The process status for ``SystemExit(code)``, as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def main() -> NoReturn:
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)
    return_big_blocks()
    from .cli import main as cli

    try:
        cli.main()  # click's standalone mode: always ends in SystemExit
        status = 0
    except SystemExit as exc:
        status = exit_status(exc.code)
    finish(status)


def finish(status: int) -> NoReturn:
    """Join non-daemon threads, flush what is buffered, and exit with ``status``."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        # what finalization does first: the thread-exit hooks (an executor nobody shut
        # down lets its idle workers go) and then every non-daemon thread joined
        shutdown()
    else:  # pragma: no cover - every CPython we support has it
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            status = status or 1
    os._exit(status)
