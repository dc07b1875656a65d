"""Fetching, verifying and caching the folder's objects from the server.

Everything downloaded is opened with the folder keys (AEAD, then the keyed id is
recomputed) before it is used, so a tampered, swapped or truncated blob raises
:class:`~chunksync.errors.IntegrityError` and nothing built on it reaches the disk.
Metadata fetched during a sync is held in ``pending`` and written to the index in the
same transaction that records the new base, so the index never holds a tree whose
children are missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..crypto.folder_keys import FolderKeys
from ..crypto.seal import open_blob
from ..errors import IntegrityError
from ..objects import (
    Commit,
    FileManifest,
    ObjectId,
    ObjectKind,
    Tree,
    TreeParts,
    decode_object,
    short_id,
)
from ..paths import validate_tree_entry_name
from ..progress import NoProgress, Progress
from ..storage.index import Index
from ..transport.base import ChunkStore
from ..treeparts import children, encode_tree, load_tree, part_ids

__all__ = ["ObjectReader"]

FETCH_BATCH = 256
META_FETCH_BATCH = 4096  # small objects: one get_many spans several requests in flight


class ObjectReader:
    """Loads trees, manifests and commits from the index or, failing that, the server."""

    def __init__(
        self, keys: FolderKeys, index: Index, store: ChunkStore, progress: Progress | None = None
    ) -> None:
        self.keys = keys
        self.index = index
        self.store = store
        self.pending: dict[ObjectId, tuple[ObjectKind, bytes]] = {}
        self._decoded: dict[ObjectId, object] = {}
        self._trees: dict[ObjectId, Tree] = {}  # whole listings (split ones put together)
        self.bytes_down = 0
        self.progress = progress or NoProgress()

    # --- synchronous lookups (pure planning uses these) ---------------------------
    def plaintext(self, oid: ObjectId) -> tuple[ObjectKind, bytes] | None:
        """A metadata object's kind and plaintext, if held locally (pending or index).

        One from the index is checked against its keyed id first: a damaged cache must
        neither be believed nor be re-uploaded (heal) as the folder's object."""
        found = self.pending.get(oid)
        if found is None:
            found = self.index.get_object(oid)
            if found is not None and self.keys.meta_id(found[1]) != oid:
                self.index.object_damaged(oid, "does not match its id")
        return found

    def has(self, oid: ObjectId) -> bool:
        return oid in self.pending or self.index.get_object(oid) is not None

    def _load(self, oid: ObjectId, kind: ObjectKind) -> object:
        obj = self._decoded.get(oid)
        if obj is None:
            found = self.plaintext(oid)
            if found is None:
                raise KeyError(oid)
            if found[0] != kind:
                raise IntegrityError(
                    f"object {short_id(oid)}: is a {found[0].name}, not a {kind.name}"
                )
            obj = decode_object(kind, found[1], oid)
            self._decoded[oid] = obj
        return obj

    def tree_object(self, oid: ObjectId) -> Tree | TreeParts:
        """The TREE object ``oid`` as stored: a leaf listing, or the index of a split one."""
        obj = self._load(oid, ObjectKind.TREE)
        assert isinstance(obj, Tree | TreeParts)  # nosec B101  # invariant for the type checker
        return obj

    def load_tree(self, oid: ObjectId) -> Tree:
        """The directory ``oid``, whole (a split listing is put together and checked)."""
        tree = self._trees.get(oid)
        if tree is None:
            tree = self._trees[oid] = load_tree(oid, self.tree_object)
        return tree

    def tree_parts(self, oid: ObjectId) -> tuple[ObjectId, ...]:
        """The parts the tree ``oid`` is stored in (none when kept whole)."""
        return part_ids(self.tree_object(oid))

    def load_manifest(self, oid: ObjectId) -> FileManifest:
        manifest = self._load(oid, ObjectKind.FILE)
        assert isinstance(manifest, FileManifest)  # nosec B101  # invariant for the type checker
        return manifest

    def load_commit(self, oid: ObjectId) -> Commit:
        commit = self._load(oid, ObjectKind.COMMIT)
        assert isinstance(commit, Commit)  # nosec B101  # invariant for the type checker
        return commit

    def store_tree(self, tree: Tree) -> ObjectId:
        """Keep a tree made during this sync (recorded with the rest of the round),
        split into parts if it is large (:mod:`chunksync.treeparts`)."""
        stored = encode_tree(tree, self.keys.meta_id)
        for oid, data in stored.objects:
            self.pending[oid] = (ObjectKind.TREE, data)
        self._trees[stored.id] = tree
        return stored.id

    # --- downloads ------------------------------------------------------------------
    async def fetch_blobs(self, kind: ObjectKind, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        """Download and open objects of one kind; returns their verified plaintext."""
        out: dict[ObjectId, bytes] = {}
        group = FETCH_BATCH if kind == ObjectKind.CHUNK else META_FETCH_BATCH
        for start in range(0, len(ids), group):
            batch = list(ids[start : start + group])
            blobs = await self.store.get_many(batch)
            for oid in batch:
                blob = blobs.get(oid)
                if blob is None:
                    raise IntegrityError(f"object {short_id(oid)}: the server did not return it")
                self.bytes_down += len(blob)
                self.progress.transferred("down", len(blob))
                out[oid] = open_blob(self.keys, kind, oid, blob)
        return out

    async def fetch_sealed(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        """Download blobs still sealed, for a worker thread to open (decrypt and verify
        with :func:`~chunksync.crypto.seal.open_blob`) before any use; raises
        IntegrityError when the server leaves one out."""
        blobs = await self.store.get_many(list(ids))
        size = 0
        for oid in ids:
            blob = blobs.get(oid)
            if blob is None:
                raise IntegrityError(f"object {short_id(oid)}: the server did not return it")
            size += len(blob)
        self.bytes_down += size
        self.progress.transferred("down", size)
        return {oid: blobs[oid] for oid in ids}

    async def ensure(self, kind: ObjectKind, ids: Iterable[ObjectId]) -> None:
        """Make metadata objects available locally, fetching the ones we lack."""
        need = sorted({oid for oid in ids if not self.has(oid)})
        if not need:
            return
        for oid, plain in (await self.fetch_blobs(kind, need)).items():
            obj = decode_object(kind, plain, oid)
            if isinstance(obj, Tree):
                for entry in obj.entries:
                    validate_tree_entry_name(entry.name)
            self.pending[oid] = (kind, plain)
            self._decoded[oid] = obj

    async def ensure_tree_closure(self, root: ObjectId | None) -> None:
        """Fetch every tree below ``root`` that the index lacks, one level per request.

        A tree already held locally has all its descendants held too (trees are only
        ever stored together with their subtrees and parts), so the walk stops there.
        The parts of a split listing are fetched like subtrees, one level further down.
        """
        frontier = [root] if root is not None and not self.has(root) else []
        while frontier:
            await self.ensure(ObjectKind.TREE, frontier)
            below = {
                oid
                for tid in frontier
                for kind, oid in children(self.tree_object(tid))
                if kind == ObjectKind.TREE and not self.has(oid)
            }
            frontier = sorted(below)

    async def commit(self, oid: ObjectId) -> Commit:
        await self.ensure(ObjectKind.COMMIT, [oid])
        return self.load_commit(oid)
