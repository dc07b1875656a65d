"""``chunksync verify``: prove that the server's head and the local folder agree.

Every object reachable from the head — commit, trees, manifests, chunks — is
downloaded again (ignoring every local cache), opened and re-hashed, and each file's
chunks are compared byte for byte with the local file at the same offsets. Problems
are returned as one line each; an empty list means the folder is intact.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import IntegrityError
from .folder import SyncFolder
from .objects import ObjectKind, id_from_hex, short_id
from .sync.objects_io import ObjectReader
from .treediff import walk_tree

__all__ = ["verify_folder"]

CHUNK_BATCH = 64


class _NoCache:
    """An index stand-in with nothing in it, so every object is fetched again."""

    def get_object(self, oid: bytes) -> None:
        return None


def _local_problems(root: Path, path: str, kind: str, target: str | None) -> str | None:
    try:
        st = os.lstat(root / path)
    except FileNotFoundError:
        return f"missing locally: {path}"
    expected = {"file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK}[kind]
    if not expected(st.st_mode):
        return f"different type locally: {path} (expected a {kind})"
    if kind == "symlink" and os.readlink(root / path) != target:
        return f"different symlink target locally: {path}"
    return None


async def verify_folder(folder: SyncFolder) -> list[str]:
    reader = ObjectReader(folder.keys, _NoCache(), folder.store)  # type: ignore[arg-type]
    head = await folder.store.get_head()
    if head.head is None:
        return ["the server holds no snapshot of this folder yet"]
    problems: list[str] = []
    commit = await reader.commit(id_from_hex(head.head))
    await reader.ensure_tree_closure(commit.tree)
    entries = list(walk_tree(commit.tree, reader.load_tree))
    await reader.ensure(ObjectKind.FILE, [e.id for _, e in entries if e.kind == "file" and e.id])
    root = folder.paths.root
    for path, entry in entries:
        problem = _local_problems(root, path, entry.kind, entry.target)
        if problem:
            problems.append(problem)
            continue
        if entry.kind != "file" or entry.id is None:
            continue
        manifest = reader.load_manifest(entry.id)
        if os.path.getsize(root / path) != manifest.size:
            problems.append(f"different size locally: {path}")
            continue
        with open(root / path, "rb") as f:
            refs = list(manifest.chunks)
            offset = 0
            for start in range(0, len(refs), CHUNK_BATCH):
                batch = refs[start : start + CHUNK_BATCH]
                try:
                    chunks = await reader.fetch_blobs(
                        ObjectKind.CHUNK, list(dict.fromkeys(r.id for r in batch))
                    )
                except IntegrityError as exc:
                    problems.append(f"{path}: {exc.message}")
                    break
                for ref in batch:
                    if os.pread(f.fileno(), ref.size, offset) != chunks[ref.id]:
                        problems.append(
                            f"content differs locally: {path} at byte {offset} (chunk {short_id(ref.id)})"
                        )
                        break
                    offset += ref.size
    return problems
