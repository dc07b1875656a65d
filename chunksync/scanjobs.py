"""Small helpers of the scanner: dirty-directory names, and reading files on a pool.

Kept apart from :mod:`chunksync.scanner` so that module stays about the walk and the
trees. :func:`read_all` runs a reader (any callable taking a job with ``rel`` and
``stat``) over a thread pool in batches: pyfastcdc's cut loop and BLAKE3 release the
GIL, and batching small files pays the pool's per-task cost once per batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from .objects import normalize_name

__all__ = ["batches", "normalize_dirty", "read_all"]

R = TypeVar("R")


class _Sized(Protocol):
    @property
    def st_size(self) -> int: ...


class _Job(Protocol):
    @property
    def rel(self) -> str: ...
    @property
    def stat(self) -> _Sized: ...


J = TypeVar("J", bound=_Job)


def normalize_dirty(dirty: Collection[str]) -> set[str]:
    """Directories named by the watcher as relative POSIX NFC paths (``""`` the root)."""
    out = set()
    for path in dirty:
        clean = normalize_name(path.replace(os.sep, "/")).strip("/")
        out.add("" if clean in ("", ".") else clean.removeprefix("./"))
    return out


def batches(jobs: Sequence[J], max_files: int = 64, max_bytes: int = 8 << 20) -> list[list[J]]:
    """Group small files so the pool's per-task cost is paid once per batch."""
    out: list[list[J]] = []
    current: list[J] = []
    size = 0
    for job in jobs:
        if current and (len(current) >= max_files or size + job.stat.st_size > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(job)
        size += job.stat.st_size
    if current:
        out.append(current)
    return out


def read_all(reader: Callable[[Any], R], jobs: Sequence[J], workers: int) -> dict[str, R]:
    """``{job.rel: reader(job)}``, on ``workers`` threads when there is more than one job."""
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="chunksync-scan") as pool:
            done = list(pool.map(lambda b: [reader(j) for j in b], batches(jobs)))
        reads = [read for batch in done for read in batch]
    else:
        reads = [reader(job) for job in jobs]
    return {job.rel: read for job, read in zip(jobs, reads, strict=True)}
