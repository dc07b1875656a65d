"""Several client devices in one test: each a folder, an LMDB index and a sync engine.

``Device`` runs the real engine against any ChunkStore (memory or HTTP); ``tree_of``
describes a folder on disk as a dict for whole-tree comparison (the same helper backs
``tools/compare_trees.py``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chunksync.conflict import ConflictPolicies
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.storage.index import Index
from chunksync.sync.engine import SyncEngine, SyncResult
from chunksync.transport.base import ChunkStore

STATE = ".chunksync"


class StepClock:
    """A deterministic clock: each reading is one second after the previous."""

    def __init__(self, start_ns: int = 1_764_000_000 * 10**9) -> None:
        self.now = start_ns

    def time_ns(self) -> int:
        self.now += 10**9
        return self.now


@dataclass
class Device:
    name: str
    root: Path
    store: ChunkStore
    keys: FolderKeys
    index: Index = field(init=False)
    clock: StepClock = field(default_factory=StepClock)
    policies: ConflictPolicies = field(default_factory=ConflictPolicies)

    def __post_init__(self) -> None:
        (self.root / STATE / "tmp").mkdir(parents=True, exist_ok=True)
        self.index = Index.open(self.root / STATE / "index")

    def engine(self) -> SyncEngine:
        return SyncEngine(
            self.root,
            self.keys,
            self.index,
            self.store,
            device=self.name,
            author="alice",
            clock=self.clock,
            tmpdir=self.root / STATE / "tmp",
            policies=self.policies,
        )

    async def sync(self, **kw: Any) -> SyncResult:
        return await self.engine().sync(**kw)

    def write(self, rel: str, data: bytes | str, *, executable: bool = False) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        if executable:
            path.chmod(0o755)
        return path

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def close(self) -> None:
        self.index.close()


def tree_of(root: Path, *, mtimes: bool = True) -> dict[str, Any]:
    """path -> description of every entry below root, except .chunksync."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            rel_dir = ""
        if rel_dir == STATE or rel_dir.startswith(STATE + "/"):
            continue
        for name in sorted(dirnames + filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel == STATE:
                continue
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(os.path.join(dirpath, name)))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                data = Path(dirpath, name).read_bytes()
                desc: tuple[Any, ...] = ("file", data, bool(st.st_mode & 0o100))
                out[rel] = desc + ((st.st_mtime_ns,) if mtimes else ())
        dirnames[:] = [d for d in dirnames if not (rel_dir == "" and d == STATE)]
    return out
