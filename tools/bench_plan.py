"""Benchmark the three-way merge planner against a flat path-by-path merge.

Both run side by side on the same synthetic folder (default 1,000 directories x 20
files = 20,000 files, ids from the real keyed BLAKE3 ``FolderKeys.meta_id``):

* **plan_merge**: the Merkle merge in :mod:`chunksync.sync.plan`, which descends only
  where tree ids differ;
* **flat**: the baseline every sync tool without a Merkle index pays: load every tree
  of base, local and remote, flatten them to ``{path: entry}`` and classify each path
  with the same :func:`chunksync.conflict.classify` (no actions, no new trees, so the
  baseline does strictly less work per path).

Scenarios: a few edits on each side (the common case), and every file edited on both
sides (worst case: 20,000 conflicts, where Merkle skipping cannot help). Figures are
wall-clock medians on a possibly loaded machine: compare the ratios.

Usage: ``.venv/bin/python tools/bench_plan.py [--dirs 1000] [--files 20] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chunksync.conflict import classify
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.objects import ObjectId, Tree, TreeEntry
from chunksync.sync.plan import plan_merge

KEYS = FolderKeys(bytes(32))
Edits = dict[tuple[int, int], bytes]


class Store:
    def __init__(self) -> None:
        self.trees: dict[ObjectId, Tree] = {}
        self.loads = 0

    def tree_id(self, tree: Tree) -> ObjectId:
        return KEYS.meta_id(tree.encode())

    def put(self, entries: list[TreeEntry]) -> ObjectId:
        tree = Tree.of(entries)
        oid = self.tree_id(tree)
        self.trees[oid] = tree
        return oid

    def load(self, oid: ObjectId) -> Tree:
        self.loads += 1
        return self.trees[oid]


def folder(store: Store, dirs: int, files: int, edits: Edits) -> ObjectId:
    top = []
    for d in range(dirs):
        entries = []
        for f in range(files):
            content = edits.get((d, f), f"{d}/{f}".encode())
            fid = KEYS.chunk_id(content)
            entries.append(TreeEntry(f"file{f:03}.txt", "file", id=fid, size=len(content)))
        top.append(TreeEntry(f"dir{d:04}", "dir", id=store.put(entries)))
    return store.put(top)


def flatten(store: Store, oid: ObjectId, prefix: str = "") -> dict[str, TreeEntry]:
    out: dict[str, TreeEntry] = {}
    for entry in store.load(oid).entries:
        path = prefix + entry.name
        out[path] = entry
        if entry.kind == "dir" and entry.id is not None:
            out.update(flatten(store, entry.id, path + "/"))
    return out


def flat_merge(store: Store, base: ObjectId, local: ObjectId, remote: ObjectId) -> int:
    b, m, t = flatten(store, base), flatten(store, local), flatten(store, remote)
    changed = 0
    for path in b.keys() | m.keys() | t.keys():
        verdict = classify(b.get(path), m.get(path), t.get(path))
        changed += verdict.outcome != "keep"
    return changed


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def scenario(name: str, dirs: int, files: int, mine: Edits, theirs: Edits, repeat: int) -> None:
    store = Store()
    base = folder(store, dirs, files, {})
    local = folder(store, dirs, files, mine)
    remote = folder(store, dirs, files, theirs)
    now = datetime(2026, 11, 25, 14, 3, 12)

    def merkle() -> object:
        load, tree_id = store.load, store.tree_id
        return plan_merge(base, local, remote, load_tree=load, tree_id=tree_id, device="b", now=now)

    store.loads = 0
    plan = merkle()
    merkle_loads = store.loads
    store.loads = 0
    flat_merge(store, base, local, remote)
    flat_loads = store.loads
    t_merkle = timed(merkle, repeat)
    t_flat = timed(lambda: flat_merge(store, base, local, remote), repeat)
    print(
        f"{name:<28} plan_merge {t_merkle * 1e3:8.2f} ms ({merkle_loads:5} trees loaded, "
        f"{len(plan.actions)} actions, {len(plan.conflicts)} conflicts) | "
        f"flat {t_flat * 1e3:8.2f} ms ({flat_loads:5} trees) | flat/plan = {t_flat / t_merkle:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dirs", type=int, default=1000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, k = args.dirs, args.files
    print(f"folder: {n} dirs x {k} files = {n * k} files; median of {args.repeat} runs")
    few_local = {(7, 1): b"local edit", (n // 2, 3): b"local edit 2"}
    few_remote = {(n - 1, 0): b"remote edit", (n // 3, 5): b"remote edit 2"}
    scenario("few edits on each side", n, k, few_local, few_remote, args.repeat)
    one_side = {(d, 0): b"remote edit" for d in range(0, n, 100)}
    scenario("remote only (base==local)", n, k, {}, one_side, args.repeat)
    every_local = {(d, f): b"L%d/%d" % (d, f) for d in range(n) for f in range(k)}
    every_remote = {(d, f): b"R%d/%d" % (d, f) for d in range(n) for f in range(k)}
    scenario("all files conflict", n, k, every_local, every_remote, max(1, args.repeat // 2))


if __name__ == "__main__":
    main()
