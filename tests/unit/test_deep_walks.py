"""Issue 9, failure 3 at the unit level: the pure tree walks at 2,000 levels.

Each used to recurse once per directory level and raised RecursionError beyond the
default limit (1,000); they now keep their pending levels on explicit stacks.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from chunksync.objects import ObjectId, Tree, TreeEntry
from chunksync.sync.graft import graft_ignored
from chunksync.sync.plan import plan_merge
from chunksync.trampoline import run
from chunksync.treediff import diff_trees, walk_tree
from tests.helpers.trees import TreeStore, fake_id

DEPTH = 2000
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def deep_tree(
    store: TreeStore, depth: int, leaf: bytes, extra: TreeEntry | None = None
) -> ObjectId:
    """``d/d/.../d/bottom.txt`` (``depth`` directories), built bottom up without recursion."""
    fid = fake_id("file", leaf)
    store.contents[fid] = leaf
    entries = [TreeEntry("bottom.txt", "file", id=fid, size=len(leaf))]
    if extra is not None:
        entries.append(extra)
    oid = store.put(Tree.of(entries))
    for _ in range(depth):
        oid = store.put(Tree.of([TreeEntry("d", "dir", id=oid)]))
    return oid


def bottom(name: str = "bottom.txt") -> str:
    return "/".join(["d"] * DEPTH + [name])


def test_default_recursion_limit_is_below_the_depth() -> None:
    assert sys.getrecursionlimit() < DEPTH


def test_plan_merge_of_2000_level_trees_with_a_change_at_the_bottom() -> None:
    store = TreeStore()
    base = deep_tree(store, DEPTH, b"v1")
    local = deep_tree(
        store, DEPTH, b"v1", TreeEntry("mine.txt", "file", id=fake_id("file", b"m"), size=1)
    )
    store.contents[fake_id("file", b"m")] = b"m"
    remote = deep_tree(store, DEPTH, b"v2")
    plan = plan_merge(
        base,
        local,
        remote,
        load_tree=store.load_tree,
        tree_id=store.tree_id,
        device="laptop",
        now=NOW,
    )
    assert [(a.op, a.path) for a in plan.actions] == [("write", bottom())]
    assert plan.push_needed and plan.summary == {"added": 1, "modified": 0, "deleted": 0}
    store.absorb(plan)
    expected = deep_tree(
        store, DEPTH, b"v2", TreeEntry("mine.txt", "file", id=fake_id("file", b"m"), size=1)
    )
    assert plan.merged_root == expected


def test_plan_merge_creates_and_removes_a_2000_level_tree() -> None:
    store = TreeStore()
    empty = store.put(Tree.of([]))
    deep = deep_tree(store, DEPTH, b"v1")
    create = plan_merge(
        empty,
        empty,
        deep,
        load_tree=store.load_tree,
        tree_id=store.tree_id,
        device="laptop",
        now=NOW,
    )
    assert [a.op for a in create.actions] == ["mkdir"] * DEPTH + ["write"]
    assert create.actions[-1].path == bottom()
    remove = plan_merge(
        deep,
        deep,
        empty,
        load_tree=store.load_tree,
        tree_id=store.tree_id,
        device="laptop",
        now=NOW,
    )
    assert [a.op for a in remove.actions] == ["delete"] + ["rmdir"] * DEPTH
    assert remove.actions[0].path == bottom() and remove.actions[-1].path == "d"
    assert not remove.push_needed  # the merge is the remote tree: nothing to count


def test_diff_and_walk_of_2000_level_trees() -> None:
    store = TreeStore()
    old, new = deep_tree(store, DEPTH, b"v1"), deep_tree(store, DEPTH, b"v2")
    diffs = list(diff_trees(old, new, store.load_tree))
    assert [(d.path, d.change) for d in diffs] == [(bottom(), "modified")]
    assert [d.path for d in diff_trees(None, new, store.load_tree)] == ["d"]
    paths = [p for p, _ in walk_tree(new, store.load_tree)]
    assert len(paths) == DEPTH + 1 and paths[-1] == bottom()


def test_graft_of_an_ignored_file_at_the_bottom_of_2000_levels() -> None:
    store = TreeStore()
    store.contents[fake_id("file", b"i")] = b"i"
    ignored = TreeEntry("cache.tmp", "file", id=fake_id("file", b"i"), size=1)
    local, remote = deep_tree(store, DEPTH, b"v1"), deep_tree(store, DEPTH, b"v1", ignored)
    grafted = graft_ignored(
        local, remote, lambda p, _d: p.endswith(".tmp"), store.load_tree, store.put
    )
    assert grafted == remote


def test_trampoline_runs_steps_deeper_than_the_recursion_limit() -> None:
    def depth(n: int):  # type: ignore[no-untyped-def]
        if n == 0:
            return 0
        return (yield depth(n - 1)) + 1

    assert run(depth(10 * DEPTH)) == 10 * DEPTH


def test_watcher_expands_a_2000_level_subtree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from chunksync.watcher import expand_subtrees
    from tests.helpers.deep import chain_path, remove_deep, write_deep

    write_deep(tmp_path, chain_path(DEPTH, "f"), b"x")
    try:
        dirs = expand_subtrees(tmp_path, ["d"])
    finally:
        remove_deep(tmp_path, "d")
    assert len(dirs) == DEPTH and "/".join(["d"] * DEPTH) in dirs
