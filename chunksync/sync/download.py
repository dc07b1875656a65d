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
  hold as a single write (:func:`chunksync.fsops.install_temp`) — then the directories
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
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import fsops
from ..crypto.seal import open_blob
from ..errors import IntegrityError
from ..objects import ChunkRef, FileManifest, ObjectId, ObjectKind, short_id
from .durable import Barrier
from .plan import Action

if TYPE_CHECKING:
    from .apply import Applier, ApplyOutcome

__all__ = ["BATCH_BYTES", "BATCH_FILES", "STREAM_BYTES", "BatchWriter"]

BATCH_FILES = 2000
BATCH_BYTES = 32 << 20
STREAM_BYTES = 8 << 20  # larger files are streamed, never held whole
WINDOW_BYTES = 8 << 20  # one streamed fetch
WRITERS = 4


@dataclass(frozen=True, slots=True)
class _Job:
    action: Action
    manifest: FileManifest
    streamed: bool


@dataclass
class _Batch:
    jobs: list[_Job]
    fetch: Future[dict[ObjectId, bytes]] | None = None


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
        """Start fetching the open batch, then finish the one fetched before it."""
        if not self._open:
            return
        batch = _Batch(self._open)
        self._open, self._open_bytes = [], 0
        wanted = {
            ref.id: None
            for job in batch.jobs
            if not job.streamed
            for ref in job.manifest.chunks
            if ref.id not in self.applier.sources
        }
        if wanted:
            batch.fetch = self._fetch(list(wanted))
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
        for batch in (self._inflight,):
            if batch is not None and batch.fetch is not None:
                batch.fetch.cancel()
        self._inflight = None
        self._open = []
        self.pool.shutdown(wait=True, cancel_futures=True)
        for name in self._temps:
            try:
                (self.applier.tmpdir / name).unlink()
            except OSError:
                pass
        self._temps.clear()

    # --- fetching -------------------------------------------------------------------
    def _fetch(self, ids: Sequence[ObjectId]) -> Future[dict[ObjectId, bytes]]:
        """Sealed blobs for ``ids``, fetched on the event loop (checked, not yet opened)."""
        return asyncio.run_coroutine_threadsafe(
            self.applier.reader.fetch_sealed(ids), self.applier.loop
        )

    def _open_chunk(self, ref: ChunkRef, sealed: dict[ObjectId, bytes]) -> bytes:
        data: bytes | None = None
        if ref.id in self.applier.sources:
            data = self.applier.read_local(ref.id)
        if data is None:
            blob = sealed.get(ref.id)
            if blob is None:  # a local copy that changed since: fetch it after all
                blob = self._fetch([ref.id]).result()[ref.id]
            data = open_blob(self.applier.keys, ObjectKind.CHUNK, ref.id, blob)
        if len(data) != ref.size:
            raise IntegrityError(f"chunk {short_id(ref.id)}: size does not match its manifest")
        return data

    def _blocks(self, job: _Job, sealed: dict[ObjectId, bytes]) -> Iterator[bytes]:
        if not job.streamed:
            for ref in job.manifest.chunks:
                yield self._open_chunk(ref, sealed)
            return
        windows = list(_windows(job.manifest.chunks, self.applier.sources))
        ahead = self._fetch(windows[0][1]) if windows and windows[0][1] else None
        for i, (refs, _) in enumerate(windows):
            current = ahead.result() if ahead is not None else {}
            following = windows[i + 1][1] if i + 1 < len(windows) else []
            ahead = self._fetch(following) if following else None
            for ref in refs:
                yield self._open_chunk(ref, current)

    # --- writing and installing -------------------------------------------------------
    def _write(self, job: _Job, sealed: dict[ObjectId, bytes], durable: bool) -> tuple[str, object]:
        entry = job.action.entry
        assert entry is not None  # nosec B101  # invariant for the type checker
        tmpname, written = fsops.write_temp(
            self.applier.tmpdir,
            job.action.path,
            self._blocks(job, sealed),
            executable=entry.executable,
            mtime_ns=entry.mtime_ns,
            durable=durable,
        )
        self._temps.add(tmpname)
        return tmpname, written

    def _finish(self, batch: _Batch) -> None:
        applier, progress = self.applier, self.applier.reader.progress
        with Barrier(applier.root, applier.tmpdir, self.pool) as barrier:
            sealed = batch.fetch.result() if batch.fetch is not None else {}
            futures = [
                self.pool.submit(self._write, job, sealed, not barrier.grouped)
                for job in batch.jobs
            ]
            written = [f.result() for f in futures]
            del sealed
            barrier.files([])  # the grouped barrier; per-file fsyncs already ran otherwise
            parents: set[str] = set()
            installed = []
            for job, (tmpname, stat_) in zip(batch.jobs, written, strict=True):
                path = job.action.path
                new_stat = fsops.install_temp(
                    applier.root,
                    applier.tmpdir,
                    tmpname,
                    path,
                    stat_,  # type: ignore[arg-type]
                    check=applier.check(path, job.action.expect),
                    sync_dir=False,
                )
                self._temps.discard(tmpname)
                parents.add(fsops.split(path)[0])
                installed.append((job, new_stat))
            barrier.dirs(parents)
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


def _windows(
    refs: Sequence[ChunkRef], local: dict[ObjectId, object]
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
