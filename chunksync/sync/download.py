"""Downloading and installing many files at once: the path ``join``, ``restore`` and
every sync that receives files share.

One file at a time costs a round trip per file and two fsyncs per file; for 20,000 small
files that is all the time there is. :class:`BatchWriter` instead takes the applier's
``write`` actions in order and:

* groups them into batches (:data:`BATCH_FILES` files or :data:`BATCH_BYTES` of
  content); a batch's chunks are fetched with one ``get_many`` (which the transport
  splits into several requests in flight), and the next batch is fetched while the
  previous one is written, so the network and the disk work at the same time;
* writes the files of a batch to temp files on worker threads, opening (decrypting and
  verifying: AEAD with the id bound, then the keyed id recomputed) every chunk there;
* makes the batch durable with grouped barriers (:mod:`chunksync.sync.durable`): temp
  files synced, then renamed into place one by one — each after the same re-check and
  hold as a single write (:func:`chunksync.fsinstall.install_temp`) — then the directories
  synced, and only then reports the files written;
* streams files larger than :data:`STREAM_BYTES` window by window (the next window is
  fetched while one is written), so memory stays bounded by the batch sizes.

Files keep their order of installation; any other action, and a write to a path a
pending write covers, first finishes every pending batch (:meth:`BatchWriter.flush`),
so the plan's order still holds where it matters. A failure removes the batch's temp
files and leaves every file not yet renamed as it was.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import fsinstall, fsops
from ..crypto.seal import open_blob
from ..errors import IntegrityError
from ..objects import ChunkRef, FileManifest, ObjectId, ObjectKind, short_id
from .durable import Barrier
from .plan import Action

if TYPE_CHECKING:
    from .apply import Applier, ApplyOutcome

__all__ = ["BATCH_BYTES", "BATCH_FILES", "STREAM_BYTES", "BatchWriter"]

BATCH_FILES = 2000  # files under one pair of durability barriers
BATCH_BYTES = 32 << 20
FETCH_FILES = 128  # files per fetch: writing starts when the first of them lands
FETCH_BYTES = 4 << 20
FETCHES_AHEAD = 4  # fetches in flight at once (each may span several requests)
STREAM_BYTES = 8 << 20  # larger files are streamed, never held whole
WINDOW_BYTES = 8 << 20  # one streamed fetch
WRITERS = 4

Sealed = dict[ObjectId, bytes]


@dataclass(frozen=True, slots=True)
class _Job:
    action: Action
    manifest: FileManifest
    streamed: bool


@dataclass
class _Batch:
    """Files under one pair of barriers. Their writes are queued to the workers as soon
    as the batch is launched; each waits only for the fetch holding its chunks."""

    jobs: list[_Job]
    barrier: Barrier
    where: dict[ObjectId, Future[Sealed]] = field(default_factory=dict)
    writes: list[Future[tuple[str, os.stat_result]]] = field(default_factory=list)


class BatchWriter:
    """Pipelined, batched ``write`` actions for one :class:`Applier` run."""

    def __init__(self, applier: Applier, outcome: ApplyOutcome, *, workers: int = WRITERS) -> None:
        self.applier = applier
        self.outcome = outcome
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunksync-write")
        self._open: list[_Job] = []
        self._open_bytes = 0
        self._inflight: _Batch | None = None
        self._paths: set[str] = set()
        self._temps: set[str] = set()
        self._tmpfd: int | None = None
        self._ahead: asyncio.Semaphore | None = None

    # --- queueing -------------------------------------------------------------------
    def covers(self, path: str) -> bool:
        """Whether a pending write is at ``path`` or at one of its ancestors."""
        while path:
            if path in self._paths:
                return True
            path = path.rpartition("/")[0]
        return False

    def add(self, action: Action) -> None:
        entry = action.entry
        # B101: invariant for the type checker
        assert entry is not None and entry.id is not None  # nosec B101
        if self.covers(action.path):
            self.flush()
        manifest = self.applier.reader.load_manifest(entry.id)
        if action.expect is not None and action.expect.kind == "file":
            self.applier.add_sources(self.applier.root, action.path, action.expect.id)
        streamed = manifest.size > STREAM_BYTES
        self._open.append(_Job(action, manifest, streamed))
        self._paths.add(action.path)
        self._open_bytes += 0 if streamed else manifest.size
        if len(self._open) >= BATCH_FILES or self._open_bytes >= BATCH_BYTES:
            self._launch()

    def _launch(self) -> None:
        """Start fetching and writing the open batch, then finish the one before it."""
        if not self._open:
            return
        if self._tmpfd is None:
            self.applier.tmpdir.mkdir(parents=True, exist_ok=True)
            self._tmpfd = os.open(self.applier.tmpdir, _DIR_FLAGS)
        barrier = Barrier(self.applier.root, self.applier.tmpdir, self.pool).__enter__()
        batch = _Batch(self._open, barrier)
        self._open, self._open_bytes = [], 0
        for group in _groups(batch.jobs):
            wanted = [
                ref.id
                for job in group
                if not job.streamed
                for ref in job.manifest.chunks
                if ref.id not in self.applier.sources and ref.id not in batch.where
            ]
            if wanted:
                fetch = self._fetch(list(dict.fromkeys(wanted)), limited=True)
                batch.where.update(dict.fromkeys(wanted, fetch))
            batch.writes += [
                self.pool.submit(self._write, job, batch.where, not barrier.grouped)
                for job in group
            ]
        previous, self._inflight = self._inflight, batch
        if previous is not None:
            self._finish(previous)

    def flush(self) -> None:
        """Finish every pending write (before an action that must see them done)."""
        self._launch()
        if self._inflight is not None:
            batch, self._inflight = self._inflight, None
            self._finish(batch)

    def close(self) -> None:
        """Stop the workers and remove temp files not renamed into place (on failure)."""
        batch, self._inflight = self._inflight, None
        if batch is not None:
            for write in batch.writes:
                write.cancel()
            for fetch in batch.where.values():
                fetch.cancel()
        self._open = []
        self.pool.shutdown(wait=True, cancel_futures=True)
        if batch is not None:
            batch.barrier.__exit__(None, None, None)
        if self._tmpfd is not None:
            os.close(self._tmpfd)
            self._tmpfd = None
        for name in self._temps:
            try:
                (self.applier.tmpdir / name).unlink()
            except OSError:
                pass
        self._temps.clear()

    # --- fetching -------------------------------------------------------------------
    def _fetch(self, ids: Sequence[ObjectId], *, limited: bool = False) -> Future[Sealed]:
        """Sealed blobs for ``ids``, fetched on the event loop (checked, not yet opened);
        ``limited`` fetches wait their turn, at most :data:`FETCHES_AHEAD` at a time."""
        return asyncio.run_coroutine_threadsafe(
            self._fetch_on_loop(ids, limited), self.applier.loop
        )

    async def _fetch_on_loop(self, ids: Sequence[ObjectId], limited: bool) -> Sealed:
        if not limited:
            return await self.applier.reader.fetch_sealed(ids)
        if self._ahead is None:
            self._ahead = asyncio.Semaphore(FETCHES_AHEAD)
        async with self._ahead:
            return await self.applier.reader.fetch_sealed(ids)

    def _open_chunk(self, ref: ChunkRef, where: Mapping[ObjectId, Future[Sealed]]) -> bytes:
        data: bytes | None = None
        if ref.id in self.applier.sources:
            data = self.applier.read_local(ref.id)
        if data is None:
            fetch = where.get(ref.id)
            blob = fetch.result().get(ref.id) if fetch is not None else None
            if blob is None:  # a local copy that changed since: fetch it after all
                blob = self._fetch([ref.id]).result()[ref.id]
            data = open_blob(self.applier.keys, ObjectKind.CHUNK, ref.id, blob)
        if len(data) != ref.size:
            raise IntegrityError(f"chunk {short_id(ref.id)}: size does not match its manifest")
        return data

    def _blocks(self, job: _Job, where: Mapping[ObjectId, Future[Sealed]]) -> Iterator[bytes]:
        if not job.streamed:
            for ref in job.manifest.chunks:
                yield self._open_chunk(ref, where)
            return
        windows = list(_windows(job.manifest.chunks, self.applier.sources))
        ahead = self._fetch(windows[0][1]) if windows and windows[0][1] else None
        for i, (refs, ids) in enumerate(windows):
            current = ahead
            following = windows[i + 1][1] if i + 1 < len(windows) else []
            ahead = self._fetch(following) if following else None
            window = dict.fromkeys(ids, current) if current is not None else {}
            for ref in refs:
                yield self._open_chunk(ref, window)

    # --- writing and installing -------------------------------------------------------
    def _write(
        self, job: _Job, where: Mapping[ObjectId, Future[Sealed]], durable: bool
    ) -> tuple[str, os.stat_result]:
        entry = job.action.entry
        assert entry is not None  # nosec B101  # invariant for the type checker
        tmpname, written = fsinstall.write_temp(
            self.applier.tmpdir,
            job.action.path,
            self._blocks(job, where),
            executable=entry.executable,
            mtime_ns=entry.mtime_ns,
            durable=durable,
            tmpfd=self._tmpfd,
        )
        self._temps.add(tmpname)
        return tmpname, written

    def _finish(self, batch: _Batch) -> None:
        applier, progress = self.applier, self.applier.reader.progress
        barrier = batch.barrier  # entered at launch, before the first write of the batch
        installed: list[tuple[_Job, os.stat_result]] = []
        try:
            written = [f.result() for f in batch.writes]
            batch.where.clear()  # the sealed blobs go as soon as every file is written
            barrier.files([])  # the grouped barrier; per-file fsyncs already ran otherwise
            parents = []
            for parent, group in _by_parent(zip(batch.jobs, written, strict=True)):
                items = [
                    fsinstall.Install(
                        tmp, job.action.path, st, applier.check(job.action.path, job.action.expect)
                    )
                    for job, (tmp, st) in group
                ]
                stats = fsinstall.install_temps(applier.root, applier.tmpdir, parent, items)
                for (job, (tmpname, _)), new_stat in zip(group, stats, strict=True):
                    self._temps.discard(tmpname)
                    installed.append((job, new_stat))
                parents.append(parent)
            barrier.dirs(parents)
        finally:
            barrier.__exit__(None, None, None)
        for job, new_stat in installed:
            entry = job.action.entry
            # B101: invariant for the type checker
            assert entry is not None and entry.id is not None  # nosec B101
            self.outcome.states[job.action.path] = applier.state_of(
                job.action.path, new_stat, entry.id
            )
            self.outcome.written += 1
            self._paths.discard(job.action.path)
        progress.files_done(len(installed))


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _groups(jobs: Sequence[_Job]) -> Iterator[Sequence[_Job]]:
    """Consecutive jobs in fetches of :data:`FETCH_FILES` files or :data:`FETCH_BYTES`."""
    start, size = 0, 0
    for i, job in enumerate(jobs):
        size += 0 if job.streamed else job.manifest.size
        if i + 1 - start >= FETCH_FILES or size >= FETCH_BYTES:
            yield jobs[start : i + 1]
            start, size = i + 1, 0
    if start < len(jobs):
        yield jobs[start:]


def _by_parent(
    pairs: Iterable[tuple[_Job, tuple[str, os.stat_result]]],
) -> Iterator[tuple[str, list[tuple[_Job, tuple[str, os.stat_result]]]]]:
    """Runs of consecutive files in the same directory (the plan lists a directory's
    files together), each installed under one walk to that directory."""
    for parent, run in itertools.groupby(pairs, key=lambda p: fsops.split(p[0].action.path)[0]):
        yield parent, list(run)


def _windows(
    refs: Sequence[ChunkRef], local: Mapping[ObjectId, object]
) -> Iterator[tuple[Sequence[ChunkRef], list[ObjectId]]]:
    """A streamed file's chunks in windows of about :data:`WINDOW_BYTES`, each with the
    ids to fetch for it (those not available locally)."""
    start = 0
    while start < len(refs):
        end, size = start, 0
        while end < len(refs) and (end == start or size + refs[end].size <= WINDOW_BYTES):
            size += refs[end].size
            end += 1
        window = refs[start:end]
        yield window, list(dict.fromkeys(r.id for r in window if r.id not in local))
        start = end
