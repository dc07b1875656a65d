"""Content merges for the engine: fetch three versions, merge, store the result.

The planner lists the files both sides changed whose policy is ``merge``
(:class:`~chunksync.mergepolicy.MergeCandidate`); :func:`resolve_merges` reads each
one's base, local and remote content, asks the pure
:func:`~chunksync.textmerge.merge_content`, and for a certain merge chunks the result
exactly as a scan of the written file would (so the next scan finds no change),
uploads its chunks and manifest, and answers with the merged entry. The engine then
plans again with these answers.

Guarantees: the local version is read from disk and checked against the manifest the
scan recorded (a file edited meanwhile raises LocalChanged: the round starts over);
downloaded versions are verified like every object. Anything unavailable or
uncertain is answered with a reason, and the plan keeps a conflicted copy. The merged
entry's metadata is a function of the inputs alone (newest mtime of the two sides,
executable bit merged three ways), so every device writes the same entry.

Merges are also described in the merge commit's message (:func:`merge_message`), so
every device can list them (:func:`merges_in`), not only the one that made them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import fsops
from ..chunker import Chunker
from ..crypto.folder_keys import FolderKeys
from ..crypto.seal import seal
from ..errors import ChunksyncError
from ..mergepolicy import AutoMerge, MergeCandidate, MergeResolution, decide
from ..objects import ChunkRef, FileManifest, ObjectId, ObjectKind, TreeEntry, id_from_hex
from ..textmerge import DEFAULT_LIMIT, Merged, merge_content
from ..transport.base import ChunkStore
from .objects_io import ObjectReader
from .push import UploadStats

__all__ = [
    "MERGE_NOTE",
    "fetch_content",
    "local_chunks",
    "merge_events",
    "merge_message",
    "merges_in",
    "merges_seen",
    "resolve_merges",
]

MERGE_NOTE = "automatic merge"
MAX_NOTES = 20  # paths described in one commit message (it holds at most 4 KiB)


def local_chunks(keys: FolderKeys, chunker: Chunker, data: bytes) -> list[tuple[ObjectId, bytes]]:
    """The chunks a scan would cut ``data`` into (scan_read.py: small files are one)."""
    if not data:
        return []
    if len(data) < chunker.params.min_size:
        return [(keys.chunk_id(data), data)]
    return [(keys.chunk_id(view), bytes(view)) for view in chunker.cut_buffer(data)]


async def fetch_content(reader: ObjectReader, entry: TreeEntry) -> bytes:
    """A version's bytes from the server, each chunk verified."""
    assert entry.id is not None  # nosec B101  # files have manifests
    await reader.ensure(ObjectKind.FILE, [entry.id])
    manifest = reader.load_manifest(entry.id)
    ids = list(dict.fromkeys(ref.id for ref in manifest.chunks))
    blobs = await reader.fetch_blobs(ObjectKind.CHUNK, ids) if ids else {}
    return b"".join(blobs[ref.id] for ref in manifest.chunks)


def _local(reader: ObjectReader, keys: FolderKeys, root: Any, cand: MergeCandidate) -> bytes:
    """This device's version from disk, checked against the manifest of the scan."""
    assert cand.mine.id is not None  # nosec B101  # files have manifests
    manifest = reader.load_manifest(cand.mine.id)
    try:
        data = fsops.read_at(root, cand.path, 0, manifest.size + 1)
    except (OSError, ChunksyncError) as exc:
        raise fsops.LocalChanged(f"{cand.path} cannot be read ({exc}); rescanning") from exc
    offset = 0
    for ref in manifest.chunks:
        piece = data[offset : offset + ref.size]
        if len(piece) != ref.size or not keys.verify_id(ObjectKind.CHUNK, piece, ref.id):
            raise fsops.LocalChanged(f"{cand.path} changed since it was scanned; rescanning")
        offset += ref.size
    if len(data) != offset:
        raise fsops.LocalChanged(f"{cand.path} changed since it was scanned; rescanning")
    return data


async def _store(
    data: bytes, keys: FolderKeys, reader: ObjectReader, store: ChunkStore, stats: UploadStats
) -> tuple[ObjectId, int]:
    """Upload the merged content's chunks and manifest; returns the manifest id."""
    chunks = local_chunks(keys, Chunker(seed=keys.chunker_seed), data)
    manifest = FileManifest(len(data), tuple(ChunkRef(oid, len(c)) for oid, c in chunks)).encode()
    manifest_id = keys.meta_id(manifest)
    objects = {oid: (ObjectKind.CHUNK, c) for oid, c in chunks}
    objects[manifest_id] = (ObjectKind.FILE, manifest)
    missing = await store.missing(list(objects))
    batch = [(oid, seal(keys, kind, oid, plain)) for oid, (kind, plain) in objects.items()]
    todo = [(oid, blob) for oid, blob in batch if oid in missing]
    if todo:
        await store.put_many(todo)
        stats.record(todo)
    stats.uploaded.update(objects)
    reader.pending[manifest_id] = (ObjectKind.FILE, manifest)
    return manifest_id, len(data)


async def resolve_merges(
    candidates: Sequence[MergeCandidate],
    *,
    root: Any,
    keys: FolderKeys,
    reader: ObjectReader,
    store: ChunkStore,
    stats: UploadStats,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, MergeResolution]:
    """Try each candidate's content merge; an answer per path (merged or why not)."""
    out: dict[str, MergeResolution] = {}
    for cand in candidates:
        key = MergeResolution.key_of(cand.base, cand.mine, cand.theirs)
        fmt = decide("merge", cand.base, cand.mine, cand.theirs, cand.path, limit)
        if fmt not in ("text", "json"):
            out[cand.path] = MergeResolution(key, reason=fmt)
            continue
        try:
            mine = _local(reader, keys, root, cand)
            base = await fetch_content(reader, cand.base)
            theirs = await fetch_content(reader, cand.theirs)
        except fsops.LocalChanged:
            raise
        except (ChunksyncError, KeyError):
            out[cand.path] = MergeResolution(key, reason="an earlier version is not available")
            continue
        result = merge_content(base, mine, theirs, fmt, limit=limit)  # type: ignore[arg-type]
        if not isinstance(result, Merged):
            out[cand.path] = MergeResolution(key, reason=result.reason)
            continue
        manifest_id, size = await _store(result.data, keys, reader, store, stats)
        executable = (
            cand.theirs.executable
            if cand.mine.executable == cand.base.executable
            else (cand.mine.executable)
        )
        entry = TreeEntry(
            cand.mine.name,
            "file",
            id=manifest_id,
            size=size,
            mtime_ns=max(cand.mine.mtime_ns, cand.theirs.mtime_ns),
            executable=executable,
        )
        out[cand.path] = MergeResolution(key, entry=entry, how=result.how)
    return out


def merge_message(merges: Sequence[AutoMerge], device: str, remote_device: str | None) -> str:
    """The merge commit's message: words for people, then JSON (on one line: a commit
    message holds no control characters) that every device reads with :func:`merges_in`."""
    notes = [
        {"path": m.path, "how": m.how, "mine": device, "theirs": remote_device or ""}
        for m in merges[:MAX_NOTES]
    ]
    while notes:
        doc = json.dumps({"merged": notes, "more": len(merges) - len(notes)})
        text = f"{MERGE_NOTE} of {len(merges)} file(s): {doc}"
        if len(text) <= 4000:
            return text
        notes.pop()
    return f"{MERGE_NOTE} of {len(merges)} file(s)"


def merges_in(message: str) -> list[dict[str, str]]:
    """The merges a commit message describes (none for any other message)."""
    first, _, rest = message.partition(": ")
    if not first.startswith(MERGE_NOTE) or not rest:
        return []
    try:
        doc = json.loads(rest)
    except ValueError:
        return []
    notes = doc.get("merged") if isinstance(doc, dict) else None
    if not isinstance(notes, list):
        return []
    return [
        {k: str(n.get(k, "")) for k in ("path", "how", "mine", "theirs")}
        for n in notes
        if isinstance(n, dict) and isinstance(n.get("path"), str)
    ]


def merges_seen(reader: ObjectReader, head: str | None, base: str | None) -> list[dict[str, Any]]:
    """Merges other devices made since this device's base, read from the merge
    commits' messages (first parents, as far as the commits are at hand)."""
    found: list[dict[str, Any]] = []
    oid = id_from_hex(head) if head else None
    for _ in range(64):
        if oid is None or oid.hex() == base or not reader.has(oid):
            break
        commit = reader.load_commit(oid)
        if len(commit.parents) == 2:
            for note in merges_in(commit.message):
                found.append(
                    {
                        **note,
                        "time_ns": commit.time_ns,
                        "device": commit.device,
                        "snapshot": oid.hex(),
                        "mine_snapshot": commit.parents[1].hex(),
                        "theirs_snapshot": commit.parents[0].hex(),
                    }
                )
        oid = commit.parents[0] if commit.parents else None
    return found


def merge_events(
    merges: Sequence[AutoMerge],
    head: str | None,
    parents: tuple[ObjectId, ...],
    devices: tuple[str, str | None],
    now: int,
    seen: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Journal entries (``change: merged``) for the merges made here, whose merge
    commit ``head`` has the remote head and the kept local side as ``parents``, and
    for those ``seen`` from other devices."""
    events = [{**note, "change": "merged"} for note in seen]
    if not merges or len(parents) != 2 or head is None:
        return events
    device, remote_device = devices
    for m in merges:
        events.append(
            {
                "time_ns": now,
                "path": m.path,
                "change": "merged",
                "device": device,
                "how": m.how,
                "mine": device,
                "theirs": remote_device or "",
                "snapshot": head,
                "mine_snapshot": parents[1].hex(),
                "theirs_snapshot": parents[0].hex(),
            }
        )
    return events
