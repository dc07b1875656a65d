"""Uploading what the server lacks, in the order that keeps the server consistent.

Write order (DESIGN.md §4.5): chunks → file manifests → trees → commit → CAS of the
head. A reader that follows a head therefore always finds every object below it, and
an interrupted upload leaves only unreferenced objects behind.

Which objects to send is decided without trusting memory: the merged tree is walked,
skipping every subtree whose id the index already knows to be on the server (Merkle:
its descendants are there too), and the remaining candidates are checked with one
batched "which of these are missing" query. Chunk content is re-read from the local
file at its offset and verified against its keyed id before sealing, so a file edited
since the scan aborts the push instead of uploading a mix of versions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsops
from ..crypto.folder_keys import FolderKeys
from ..crypto.seal import seal
from ..errors import ChunksyncError
from ..fsops import LocalChanged
from ..objects import ObjectId, ObjectKind
from ..progress import NoProgress, Progress
from ..storage.index import Index
from ..trampoline import Walk, run
from ..transport.base import ChunkStore
from ..treediff import join
from .objects_io import ObjectReader

__all__ = ["UploadStats", "Uploader"]

BATCH_BYTES = 16 << 20


@dataclass
class UploadStats:
    objects: int = 0
    size: int = 0
    uploaded: set[ObjectId] = field(default_factory=set)

    progress: Progress = field(default_factory=NoProgress)
    #: manifests whose every chunk was uploaded while scanning
    chunks_uploaded_for: frozenset[ObjectId] = frozenset()

    def record(self, batch: list[tuple[ObjectId, bytes]]) -> None:
        size = sum(len(blob) for _, blob in batch)
        self.objects += len(batch)
        self.size += size
        self.uploaded.update(oid for oid, _ in batch)
        self.progress.transferred("up", size)


@dataclass(frozen=True, slots=True)
class _ChunkSource:
    path: str
    offset: int
    size: int


class Uploader:
    """Finds and uploads every object reachable from a root that the server lacks."""

    def __init__(
        self,
        root: Path,
        keys: FolderKeys,
        index: Index,
        reader: ObjectReader,
        store: ChunkStore,
        stats: UploadStats | None = None,
    ) -> None:
        self.root = root
        self.keys = keys
        self.index = index
        self.reader = reader
        self.store = store
        self.stats = stats or UploadStats()

    #: False while the index's "known on the server" cache is being re-checked
    #: (:mod:`chunksync.sync.heal`): every candidate is then asked of the server
    trust_known = True
    #: ids a "missing" query of this round found on the server (sync/heal.py): known
    #: again even when the cache of known ids was not trusted
    verified: frozenset[ObjectId] = frozenset()

    def _known(self, oid: ObjectId) -> bool:
        return (
            oid in self.stats.uploaded
            or oid in self.verified
            or (self.trust_known and self.index.known(oid))
        )

    def _candidates(
        self,
        tree_id: ObjectId,
        prefix: str,
        out: dict[ObjectId, ObjectKind],
        chunks: dict[ObjectId, _ChunkSource],
        remote_id: ObjectId | None,
    ) -> Walk[None]:
        """Collect what below ``tree_id`` may be missing on the server. ``remote_id`` is
        the server head's tree at the same path: whatever equals it is there already.
        A walk step (run by :func:`chunksync.trampoline.run`): no recursion limit."""
        if tree_id == remote_id or self._known(tree_id) or tree_id in out:
            return
        out[tree_id] = ObjectKind.TREE
        # a split listing: only the parts the server's listing at this path lacks
        there = set(self.reader.tree_parts(remote_id)) if remote_id is not None else set()
        for part in self.reader.tree_parts(tree_id):
            if part not in there and not self._known(part):
                out.setdefault(part, ObjectKind.TREE)
        theirs = self.reader.load_tree(remote_id).by_name() if remote_id is not None else {}
        for entry in self.reader.load_tree(tree_id).entries:
            path = join(prefix, entry.name)
            remote = theirs.get(entry.name)
            if remote is not None and remote.id == entry.id:
                continue
            if entry.kind == "dir" and entry.id is not None:
                sub = remote.id if remote is not None and remote.kind == "dir" else None
                yield self._candidates(entry.id, path, out, chunks, sub)
            elif entry.kind == "file" and entry.id is not None and not self._known(entry.id):
                if entry.id in out:
                    continue
                out[entry.id] = ObjectKind.FILE
                if self.trust_known and entry.id in self.stats.chunks_uploaded_for:
                    continue
                offset = 0
                for ref in self.reader.load_manifest(entry.id).chunks:
                    if ref.id not in chunks and not self._known(ref.id):
                        chunks[ref.id] = _ChunkSource(path, offset, ref.size)
                    offset += ref.size

    async def push_tree(self, root_tree: ObjectId, remote_root: ObjectId | None = None) -> None:
        """Upload every missing object below ``root_tree`` (chunks first, trees last);
        subtrees equal to those of ``remote_root`` (the server head's) are skipped."""
        meta: dict[ObjectId, ObjectKind] = {}
        chunks: dict[ObjectId, _ChunkSource] = {}
        run(self._candidates(root_tree, "", meta, chunks, remote_root))
        if not meta and not chunks:
            return
        missing = await self.store.missing(list(chunks) + list(meta))
        todo = sum(src.size for oid, src in chunks.items() if oid in missing)
        self.stats.progress.expect("up", self.stats.size + todo)  # sent while scanning + the rest
        await self._upload_chunks({oid: src for oid, src in chunks.items() if oid in missing})
        for kind in (ObjectKind.FILE, ObjectKind.TREE):
            items = [oid for oid, k in meta.items() if k == kind and oid in missing]
            await self.put_metadata(kind, items)
        # everything we considered is now on the server, uploaded or already there
        self.stats.uploaded.update(chunks)
        self.stats.uploaded.update(meta)

    async def put_metadata(self, kind: ObjectKind, ids: list[ObjectId]) -> None:
        batch: list[tuple[ObjectId, bytes]] = []
        size = 0
        for oid in ids:
            found = self.reader.plaintext(oid)
            # B101: invariant for the type checker
            assert found is not None, "metadata to upload must be in the index"  # nosec B101
            blob = seal(self.keys, kind, oid, found[1])
            batch.append((oid, blob))
            size += len(blob)
            if size >= BATCH_BYTES:
                await self._put(batch)
                batch, size = [], 0
        if batch:
            await self._put(batch)

    async def put_object(self, kind: ObjectKind, oid: ObjectId, plaintext: bytes) -> None:
        await self._put([(oid, seal(self.keys, kind, oid, plaintext))])

    async def _put(self, batch: list[tuple[ObjectId, bytes]]) -> None:
        await self.store.put_many(batch)
        self.stats.record(batch)

    def _read_and_seal(self, oid: ObjectId, src: _ChunkSource) -> tuple[ObjectId, bytes]:
        try:
            data = fsops.read_at(self.root, src.path, src.offset, src.size)
        except (OSError, ChunksyncError) as exc:
            raise LocalChanged(f"{src.path} cannot be read any more ({exc}); rescanning") from exc
        if len(data) != src.size or not self.keys.verify_id(ObjectKind.CHUNK, data, oid):
            raise LocalChanged(f"{src.path} changed since it was scanned; rescanning")
        return oid, seal(self.keys, ObjectKind.CHUNK, oid, data)

    def _batches(
        self, chunks: dict[ObjectId, _ChunkSource]
    ) -> Iterator[list[tuple[ObjectId, _ChunkSource]]]:
        batch: list[tuple[ObjectId, _ChunkSource]] = []
        size = 0
        # read files in path/offset order: sequential I/O
        for oid, src in sorted(chunks.items(), key=lambda kv: (kv[1].path, kv[1].offset)):
            batch.append((oid, src))
            size += src.size
            if size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    async def _upload_chunks(self, chunks: dict[ObjectId, _ChunkSource]) -> None:
        """Read, seal (on two threads: zstd and AES release the GIL) and upload,
        with the next batch sealing while the previous one uploads."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="seal") as pool:
            pending: asyncio.Task[None] | None = None
            for batch in self._batches(chunks):
                sealed = await asyncio.gather(
                    *(
                        loop.run_in_executor(pool, self._read_and_seal, oid, src)
                        for oid, src in batch
                    )
                )
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(self._put(list(sealed)))
            if pending is not None:
                await pending
