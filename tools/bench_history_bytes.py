"""Where a history replay's server bytes go, by object kind, beside git's pack.

The history row of ``tools/bench_peers.py`` replays a repository's first-parent commits
through the CLI against a real server (minutes). This script replays the same states
in-process (one sync engine, an in-memory store: seconds) and breaks the stored bytes
down by object kind (chunks, file manifests, trees, commits), with each kind's sealing
overhead (header, nonce, tag, padding) and plaintext bytes, so a change to the object
formats or the chunker can be judged on bytes alone; bytes do not depend on the load.

    .venv/bin/python tools/bench_history_bytes.py --commits 120
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers.history import (
    _apply,
    _Blobs,
    _git,
    first_parent_commits,
    pack_bytes,
    tree_listing,
)

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import open_blob, parse_header
from chunksync.storage.index import Index
from chunksync.sync.engine import SyncEngine
from chunksync.transport.memory import MemoryChunkStore

REPO = Path(__file__).resolve().parents[1]


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000 * 10**9

    def time_ns(self) -> int:
        self.now += 10**9
        return self.now


async def _replay(source: Path, work: Path, commits: list[str]) -> MemoryChunkStore:
    root = work / "folder"
    (root / ".chunksync" / "tmp").mkdir(parents=True)
    keys = FolderKeys(bytes(range(32)))
    store = MemoryChunkStore()
    index = Index.open(root / ".chunksync" / "index")
    engine = SyncEngine(root, keys, index, store, device="bench", author="bench", clock=_Clock())
    blobs = _Blobs(source)
    git_dir = work / "replay.git"
    _git("init", "--quiet", "--bare", str(git_dir))
    genv = {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(root)}
    previous: dict[str, tuple[str, str]] = {}
    try:
        for i, commit in enumerate(commits):
            listing = tree_listing(source, commit)
            _apply(root, previous, listing, blobs)
            previous = listing
            await engine.sync(allow_mass_delete=True)
            stamp = {
                "GIT_AUTHOR_DATE": f"{1_700_000_000 + i * 60} +0000",
                "GIT_COMMITTER_DATE": f"{1_700_000_000 + i * 60} +0000",
            }
            _git("add", "-A", "-f", "--", ".", ":(exclude).chunksync", cwd=root, env=genv)
            _git("commit", "-q", "--allow-empty", "-m", f"r{i}", cwd=root, env={**genv, **stamp})
    finally:
        blobs.close()
        index.close()
    _git("gc", "--quiet", "--aggressive", "--prune=now", env={"GIT_DIR": str(git_dir)})
    print(f"git pack: {pack_bytes(git_dir):,} bytes; {len(previous)} files at the end")
    _breakdown(store, keys)
    return store


def _breakdown(store: MemoryChunkStore, keys: FolderKeys) -> None:
    count: Counter[str] = Counter()
    sealed: Counter[str] = Counter()
    plain: Counter[str] = Counter()
    for oid, blob in store._blobs.items():
        kind = parse_header(blob).kind
        count[kind.name] += 1
        sealed[kind.name] += len(blob)
        plain[kind.name] += len(open_blob(keys, kind, oid, blob))
    total = sum(sealed.values())
    print(f"server objects: {total:,} bytes in {sum(count.values()):,} objects")
    print(f"{'kind':8} {'objects':>8} {'sealed':>12} {'plaintext':>12} {'share':>6}")
    for kind in sorted(count):
        print(
            f"{kind:8} {count[kind]:8,} {sealed[kind]:12,} {plain[kind]:12,} "
            f"{sealed[kind] / total:6.1%}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=120)
    ap.add_argument("--repo", type=Path, default=REPO)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="history-bytes-"))
    try:
        asyncio.run(_replay(args.repo, work, first_parent_commits(args.repo, args.commits)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
