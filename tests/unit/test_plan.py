"""The merge planner as a pure function over small in-memory trees.

Every cell of the merge table (local change x remote change) is one case with its
expected merged tree, actions and conflicts; each case also checks that playing the
actions on the local tree gives exactly the merged tree. Hypothesis then checks
convergence, "no version lost" and idempotence on random trees.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunksync.conflict import ConflictPolicies, is_conflict_copy, strip_conflict_tag
from chunksync.errors import ObjectNotFound, UnsafePathError
from chunksync.objects import ObjectId, Tree, TreeEntry
from chunksync.sync.plan import Plan, plan_merge
from tests.helpers.trees import File, Link, Spec, TreeStore, apply_actions, comparable

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 14, 3, 12)
STAMP = "2026-11-25 140312"
LC = f"f (conflicted copy {STAMP} from laptop).txt"
RC = f"f (conflicted copy {STAMP} from desktop).txt"
NC = f"new (conflicted copy {STAMP} from laptop).txt"
IC = f"f.txt/inner (conflicted copy {STAMP} from laptop)"


def merge(
    store: TreeStore,
    base: ObjectId | None,
    local: ObjectId,
    remote: ObjectId | None,
    **kwargs: object,
) -> Plan:
    options: dict[str, object] = {"device": "laptop", "remote_device": "desktop", "now": NOW}
    options.update(kwargs)
    plan = plan_merge(
        base, local, remote, load_tree=store.load_tree, tree_id=store.tree_id, **options  # type: ignore[arg-type]
    )
    store.absorb(plan)
    return plan


def check_apply(store: TreeStore, local: ObjectId, plan: Plan) -> None:
    """The actions turn the local tree into the merged tree, and re-merging is a no-op."""
    after = apply_actions(store.flatten(local), plan.actions)
    assert comparable(after) == comparable(store.flatten(plan.merged_root))
    rebuilt = store.build_flat(after)
    assert rebuilt == plan.merged_root
    again = merge(store, plan.merged_root, rebuilt, plan.merged_root)
    assert again.actions == () and again.conflicts == () and not again.push_needed


def brief(plan: Plan) -> tuple[list[tuple[str, ...]], list[tuple[object, ...]]]:
    actions = [(a.op, a.path) + ((a.dest,) if a.dest else ()) for a in plan.actions]
    conflicts = [(c.kind, c.path, c.kept, c.copy_path) for c in plan.conflicts]
    return actions, conflicts


def side(op: str, who: str) -> Spec:
    """One side's change to the base ``{"f.txt": b"base"}``."""
    return {
        "unchanged": {"f.txt": b"base"},
        "added": {"f.txt": b"base", "new.txt": f"{who} new".encode()},
        "modified": {"f.txt": f"{who} edit".encode()},
        "deleted": {},
        "renamed": {"g.txt": b"base"},
        "type-changed": {"f.txt": {"inner": f"{who} inner".encode()}},
    }[op]


D = "dir"
R_DIR = {"f.txt": D, "f.txt/inner": b"remote inner"}
L_DIR = {"f.txt": D, "f.txt/inner": b"local inner"}
MAKE_R_DIR = [("mkdir", "f.txt"), ("write", "f.txt/inner")]
MD_LOCAL = [("modify-delete", "f.txt", "local", None)]
MD_REMOTE = [("modify-delete", "f.txt", "remote", None)]

# (local change, remote change, merged tree, actions, conflicts)
TABLE = [
    ("unchanged", "unchanged", {"f.txt": b"base"}, [], []),
    ("unchanged", "added", {"f.txt": b"base", "new.txt": b"remote new"}, [("write", "new.txt")], []),
    ("unchanged", "modified", {"f.txt": b"remote edit"}, [("write", "f.txt")], []),
    ("unchanged", "deleted", {}, [("delete", "f.txt")], []),
    ("unchanged", "renamed", {"g.txt": b"base"}, [("delete", "f.txt"), ("write", "g.txt")], []),
    ("unchanged", "type-changed", R_DIR, [("delete", "f.txt"), *MAKE_R_DIR], []),
    ("added", "unchanged", {"f.txt": b"base", "new.txt": b"local new"}, [], []),
    (
        "added",
        "added",
        {"f.txt": b"base", "new.txt": b"remote new", NC: b"local new"},
        [("rename_local", "new.txt", NC), ("write", "new.txt")],
        [("both-added", "new.txt", "remote", NC)],
    ),
    ("added", "modified", {"f.txt": b"remote edit", "new.txt": b"local new"}, [("write", "f.txt")], []),
    ("added", "deleted", {"new.txt": b"local new"}, [("delete", "f.txt")], []),
    (
        "added",
        "renamed",
        {"g.txt": b"base", "new.txt": b"local new"},
        [("delete", "f.txt"), ("write", "g.txt")],
        [],
    ),
    (
        "added",
        "type-changed",
        {**R_DIR, "new.txt": b"local new"},
        [("delete", "f.txt"), *MAKE_R_DIR],
        [],
    ),
    ("modified", "unchanged", {"f.txt": b"local edit"}, [], []),
    ("modified", "added", {"f.txt": b"local edit", "new.txt": b"remote new"}, [("write", "new.txt")], []),
    (
        "modified",
        "modified",
        {"f.txt": b"remote edit", LC: b"local edit"},
        [("rename_local", "f.txt", LC), ("write", "f.txt")],
        [("both-modified", "f.txt", "remote", LC)],
    ),
    ("modified", "deleted", {"f.txt": b"local edit"}, [], MD_LOCAL),
    ("modified", "renamed", {"f.txt": b"local edit", "g.txt": b"base"}, [("write", "g.txt")], MD_LOCAL),
    (
        "modified",
        "type-changed",
        {**R_DIR, LC: b"local edit"},
        [("rename_local", "f.txt", LC), *MAKE_R_DIR],
        [("type-clash", "f.txt", "remote", LC)],
    ),
    ("deleted", "unchanged", {}, [], []),
    ("deleted", "added", {"new.txt": b"remote new"}, [("write", "new.txt")], []),
    ("deleted", "modified", {"f.txt": b"remote edit"}, [("write", "f.txt")], MD_REMOTE),
    ("deleted", "deleted", {}, [], []),
    ("deleted", "renamed", {"g.txt": b"base"}, [("write", "g.txt")], []),
    ("deleted", "type-changed", R_DIR, MAKE_R_DIR, MD_REMOTE),
    ("renamed", "unchanged", {"g.txt": b"base"}, [], []),
    ("renamed", "added", {"g.txt": b"base", "new.txt": b"remote new"}, [("write", "new.txt")], []),
    ("renamed", "modified", {"f.txt": b"remote edit", "g.txt": b"base"}, [("write", "f.txt")], MD_REMOTE),
    ("renamed", "deleted", {"g.txt": b"base"}, [], []),
    ("renamed", "renamed", {"g.txt": b"base"}, [], []),
    ("renamed", "type-changed", {**R_DIR, "g.txt": b"base"}, MAKE_R_DIR, MD_REMOTE),
    ("type-changed", "unchanged", L_DIR, [], []),
    ("type-changed", "added", {**L_DIR, "new.txt": b"remote new"}, [("write", "new.txt")], []),
    (
        "type-changed",
        "modified",
        {**L_DIR, RC: b"remote edit"},
        [("write", RC)],
        [("type-clash", "f.txt", "local", RC)],
    ),
    ("type-changed", "deleted", L_DIR, [], MD_LOCAL),
    ("type-changed", "renamed", {**L_DIR, "g.txt": b"base"}, [("write", "g.txt")], MD_LOCAL),
    (
        "type-changed",
        "type-changed",
        {"f.txt": D, "f.txt/inner": b"remote inner", IC: b"local inner"},
        [("rename_local", "f.txt/inner", IC), ("write", "f.txt/inner")],
        [("both-added", "f.txt/inner", "remote", IC)],
    ),
]


def test_table_covers_every_cell() -> None:
    ops = ["unchanged", "added", "modified", "deleted", "renamed", "type-changed"]
    assert sorted((row[0], row[1]) for row in TABLE) == sorted((a, b) for a in ops for b in ops)


@pytest.mark.parametrize(
    ("mine", "theirs", "expected", "actions", "conflicts"),
    TABLE,
    ids=[f"{row[0]}-x-{row[1]}" for row in TABLE],
)
def test_merge_table(
    mine: str,
    theirs: str,
    expected: dict[str, object],
    actions: list[tuple[str, ...]],
    conflicts: list[tuple[object, ...]],
) -> None:
    store = TreeStore()
    base = store.build({"f.txt": b"base"})
    local, remote = store.build(side(mine, "local")), store.build(side(theirs, "remote"))
    plan = merge(store, base, local, remote)
    assert store.show(plan.merged_root) == expected
    assert brief(plan) == (actions, conflicts)
    assert plan.push_needed == (plan.merged_root != remote)
    check_apply(store, local, plan)
