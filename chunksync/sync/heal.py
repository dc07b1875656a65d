"""Healing what the server lost, from what this device still holds.

The index remembers which objects are "known on the server" so that uploads skip them,
and the push skips every subtree equal to the server head's. Both are a cache of the
server's state, and a server can lose objects (a crash that loses its last index
writes, a damaged pack it has quarantined): a device that trusted its cache forever
would report "in sync" while no other device can join, and would move the head onto
commits whose objects are gone.

So the cache is checked against the server's answers: at start-up and after errors the
engine asks, in one batched "which of these are missing" query, for the whole closure
of the server head (trees, file manifests, chunks), and re-uploads in write order
(chunks, then manifests, then trees) whatever is missing and this device holds:
metadata from the index, chunk content from the local file whose stat row says it
still holds that version (re-read and verified against the keyed id, so a file edited
since is never sent under an old id). What cannot be re-uploaded from here is counted:
another device that holds it heals it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ChunksyncError
from ..fsops import LocalChanged
from ..objects import ObjectId, ObjectKind
from ..storage.index import Index
from ..treediff import walk_tree
from .objects_io import ObjectReader
from .push import BATCH_BYTES, Uploader, _ChunkSource

__all__ = ["HealReport", "heal_closure"]


@dataclass(frozen=True, slots=True)
class HealReport:
    """``missing``: objects of the closure the server lacked; ``restored``: how many of
    them this device re-uploaded; the rest it could not supply."""

    missing: int = 0
    restored: int = 0

    @property
    def unrecoverable(self) -> int:
        return self.missing - self.restored


@dataclass
class _Closure:
    trees: list[ObjectId]
    manifests: dict[ObjectId, str]  # manifest id -> a path holding it
    chunks: dict[ObjectId, ObjectId]  # chunk id -> a manifest containing it
    commits: list[ObjectId] = field(default_factory=list)

    def ids(self) -> list[ObjectId]:
        return [*self.chunks, *self.manifests, *self.trees, *self.commits]


def _closure(root: ObjectId, reader: ObjectReader) -> _Closure:
    closure = _Closure([root, *reader.tree_parts(root)], {}, {})
    for path, entry in walk_tree(root, reader.load_tree):
        if entry.id is None:
            continue
        if entry.kind == "dir":
            closure.trees.extend((entry.id, *reader.tree_parts(entry.id)))
        elif entry.kind == "file" and entry.id not in closure.manifests:
            closure.manifests[entry.id] = path
            if reader.has(entry.id):
                for ref in reader.load_manifest(entry.id).chunks:
                    closure.chunks.setdefault(ref.id, entry.id)
    return closure


def _chunk_sources(
    wanted: set[ObjectId], closure: _Closure, reader: ObjectReader, index: Index
) -> dict[ObjectId, _ChunkSource]:
    """Where on disk each wanted chunk can be re-read: a file whose stat row still
    names the manifest that holds the chunk."""
    sources: dict[ObjectId, _ChunkSource] = {}
    for manifest_id in {closure.chunks[c] for c in wanted}:
        path = closure.manifests[manifest_id]
        state = index.get_state(path)
        if state is None or state.manifest_id != manifest_id:
            continue
        offset = 0
        for ref in reader.load_manifest(manifest_id).chunks:
            if ref.id in wanted and ref.id not in sources:
                sources[ref.id] = _ChunkSource(path, offset, ref.size)
            offset += ref.size
    return sources


async def heal_closure(
    head: ObjectId | None, reader: ObjectReader, uploader: Uploader, index: Index
) -> HealReport:
    """Ask the server for the commit ``head`` and every object below it, and re-upload
    what it lacks."""
    if head is None:
        return HealReport()
    closure = _closure(reader.load_commit(head).tree, reader)
    closure.commits.append(head)
    missing = await reader.store.missing(closure.ids())
    uploader.verified = frozenset(closure.ids()) - missing
    if not missing:
        return HealReport()
    restored = 0
    sources = _chunk_sources(missing & closure.chunks.keys(), closure, reader, index)
    batch: list[tuple[ObjectId, bytes]] = []
    size = 0
    for oid, src in sorted(sources.items(), key=lambda kv: (kv[1].path, kv[1].offset)):
        try:
            batch.append(uploader._read_and_seal(oid, src))
        except (LocalChanged, ChunksyncError):
            continue  # edited since: another device (or the next scan) supplies it
        size += src.size
        if size >= BATCH_BYTES:
            await uploader._put(batch)
            restored, batch, size = restored + len(batch), [], 0
    if batch:
        await uploader._put(batch)
        restored += len(batch)
    metadata = (
        (ObjectKind.FILE, closure.manifests),
        (ObjectKind.TREE, closure.trees),
        (ObjectKind.COMMIT, closure.commits),
    )
    for kind, ids in metadata:
        held = [oid for oid in ids if oid in missing and reader.plaintext(oid) is not None]
        await uploader.put_metadata(kind, held)
        restored += len(held)
    return HealReport(len(missing), restored)
