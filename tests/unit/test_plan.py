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

from chunksync.conflict import ConflictPolicies, same_content, strip_conflict_tag
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
        base,
        local,
        remote,
        load_tree=store.load_tree,
        tree_id=store.tree_id,
        **options,  # type: ignore[arg-type]
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
W_NEW, W_F, W_G = ("write", "new.txt"), ("write", "f.txt"), ("write", "g.txt")
MD_LOCAL = [("modify-delete", "f.txt", "local", None)]
MD_REMOTE = [("modify-delete", "f.txt", "remote", None)]

# (local change, remote change, merged tree, actions, conflicts)
TABLE = [
    ("unchanged", "unchanged", {"f.txt": b"base"}, [], []),
    ("unchanged", "added", {"f.txt": b"base", "new.txt": b"remote new"}, [W_NEW], []),
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
    ("added", "modified", {"f.txt": b"remote edit", "new.txt": b"local new"}, [W_F], []),
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
    ("modified", "added", {"f.txt": b"local edit", "new.txt": b"remote new"}, [W_NEW], []),
    (
        "modified",
        "modified",
        {"f.txt": b"remote edit", LC: b"local edit"},
        [("rename_local", "f.txt", LC), ("write", "f.txt")],
        [("both-modified", "f.txt", "remote", LC)],
    ),
    ("modified", "deleted", {"f.txt": b"local edit"}, [], MD_LOCAL),
    ("modified", "renamed", {"f.txt": b"local edit", "g.txt": b"base"}, [W_G], MD_LOCAL),
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
    ("renamed", "modified", {"f.txt": b"remote edit", "g.txt": b"base"}, [W_F], MD_REMOTE),
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


# --------------------------------------------------------------------- directories


def test_remote_deleted_dir_local_edited_keeps_only_the_edit() -> None:
    store = TreeStore()
    base = store.build({"d": {"x": b"x", "y": b"y"}, "keep": b"k"})
    local = store.build({"d": {"x": b"x2", "y": b"y"}, "keep": b"k"})
    remote = store.build({"keep": b"k"})
    plan = merge(store, base, local, remote)
    assert store.show(plan.merged_root) == {"d": D, "d/x": b"x2", "keep": b"k"}
    assert brief(plan) == ([("delete", "d/y")], [("modify-delete", "d/x", "local", None)])
    check_apply(store, local, plan)


def test_local_deleted_dir_remote_edited_recreates_dir_before_child() -> None:
    store = TreeStore()
    base = store.build({"d": {"x": b"x", "y": b"y"}})
    local = store.build({})
    remote = store.build({"d": {"x": b"x2", "y": b"y"}})
    plan = merge(store, base, local, remote)
    assert store.show(plan.merged_root) == {"d": D, "d/x": b"x2"}
    assert brief(plan) == (
        [("mkdir", "d"), ("write", "d/x")],
        [("modify-delete", "d/x", "remote", None)],
    )
    check_apply(store, local, plan)


def test_remote_deleted_dir_keeps_local_files_never_synced() -> None:
    store = TreeStore()
    base = store.build({"d": {"x": b"x", "e": {"y": b"y"}}})
    local = store.build({"d": {"x": b"x", "e": {"y": b"y"}, "new": b"mine"}})
    remote = store.build({})
    plan = merge(store, base, local, remote)
    assert store.show(plan.merged_root) == {"d": D, "d/new": b"mine"}
    assert brief(plan) == ([("delete", "d/e/y"), ("rmdir", "d/e"), ("delete", "d/x")], [])
    check_apply(store, local, plan)


def test_remote_deleted_unchanged_tree_deletes_children_before_rmdir() -> None:
    store = TreeStore()
    base = store.build({"d": {"e": {"y": b"y"}, "x": b"x"}, "k": b"k"})
    remote = store.build({"k": b"k"})
    plan = merge(store, base, base, remote)
    assert brief(plan)[0] == [
        ("delete", "d/e/y"),
        ("rmdir", "d/e"),
        ("delete", "d/x"),
        ("rmdir", "d"),
    ]
    check_apply(store, base, plan)


def test_both_sides_edit_different_files_in_one_dir_merges_without_conflict() -> None:
    store = TreeStore()
    base = store.build({"d": {"a": b"a", "b": b"b"}})
    local = store.build({"d": {"a": b"a-local", "b": b"b"}})
    remote = store.build({"d": {"a": b"a", "b": b"b-remote"}})
    plan = merge(store, base, local, remote)
    assert store.show(plan.merged_root) == {"d": D, "d/a": b"a-local", "d/b": b"b-remote"}
    assert brief(plan) == ([("write", "d/b")], [])
    assert plan.push_needed and plan.summary == {"added": 0, "modified": 1, "deleted": 0}
    assert set(plan.new_trees) >= {plan.merged_root}
    check_apply(store, local, plan)


def test_mkdir_comes_before_children_and_symlinks_come_last() -> None:
    store = TreeStore()
    base = store.build({})
    remote = store.build({"a": Link("z/file"), "z": {"file": b"1", "sub": {"deep": b"2"}}})
    plan = merge(store, base, base, remote)
    assert brief(plan)[0] == [
        ("mkdir", "z"),
        ("write", "z/file"),
        ("mkdir", "z/sub"),
        ("write", "z/sub/deep"),
        ("symlink", "a"),
    ]
    check_apply(store, base, plan)


def test_case_only_rename_deletes_before_writing() -> None:
    store = TreeStore()
    base = store.build({"a.txt": b"x"})
    remote = store.build({"A.txt": b"x"})
    plan = merge(store, base, base, remote)
    assert brief(plan)[0] == [("delete", "a.txt"), ("write", "A.txt")]


# ------------------------------------------------------------------------- metadata


def test_local_touch_vs_remote_edit_is_not_a_conflict() -> None:
    store = TreeStore()
    base = store.build({"f": File(b"v1", mtime_ns=1)})
    local = store.build({"f": File(b"v1", mtime_ns=5)})
    remote = store.build({"f": File(b"v2", mtime_ns=3)})
    plan = merge(store, base, local, remote)
    assert store.show(plan.merged_root) == {"f": File(b"v2", 3)}
    assert brief(plan) == ([("write", "f")], [])
    assert plan.actions[0].expect == store.flatten(local)["f"]


def test_same_edit_on_both_sides_takes_remote_mtime() -> None:
    store = TreeStore()
    base = store.build({"f": File(b"v1", mtime_ns=1)})
    local = store.build({"f": File(b"v2", mtime_ns=7)})
    remote = store.build({"f": File(b"v2", mtime_ns=9)})
    plan = merge(store, base, local, remote)
    assert store.show(plan.merged_root) == {"f": File(b"v2", 9)}
    assert brief(plan) == ([("set_meta", "f")], [])
    assert not plan.push_needed
    check_apply(store, local, plan)


def test_remote_exec_bit_change_is_a_set_meta() -> None:
    store = TreeStore()
    base = store.build({"run.sh": b"#!/bin/sh"})
    remote = store.build({"run.sh": File(b"#!/bin/sh", executable=True)})
    plan = merge(store, base, base, remote)
    assert brief(plan) == ([("set_meta", "run.sh")], [])
    assert plan.actions[0].entry is not None and plan.actions[0].entry.executable


def test_local_only_touch_is_pushed() -> None:
    store = TreeStore()
    base = store.build({"f": File(b"v1", mtime_ns=1), "g": b"g"})
    local = store.build({"f": File(b"v1", mtime_ns=5), "g": b"g"})
    remote = store.build({"f": File(b"v1", mtime_ns=1), "g": b"g2"})
    plan = merge(store, base, local, remote)
    assert store.show(plan.merged_root) == {"f": File(b"v1", 5), "g": b"g2"}
    assert plan.push_needed and plan.summary == {"added": 0, "modified": 0, "deleted": 0}


# ------------------------------------------------------------------------- policies


def test_last_write_wins_remote_newer_replaces_local_and_lists_loser() -> None:
    store = TreeStore()
    base = store.build({"notes.md": File(b"v1", 1)})
    local = store.build({"notes.md": File(b"mine", 5)})
    remote = store.build({"notes.md": File(b"theirs", 9)})
    policies = ConflictPolicies(rules=(("*.md", "last-write-wins"),))
    plan = merge(store, base, local, remote, policies=policies)
    assert store.show(plan.merged_root) == {"notes.md": File(b"theirs", 9)}
    assert brief(plan) == ([("write", "notes.md")], [("both-modified", "notes.md", "remote", None)])
    assert plan.conflicts[0].policy == "last-write-wins"
    assert "history" in plan.conflicts[0].explanation
    check_apply(store, local, plan)


def test_last_write_wins_local_newer_keeps_local_and_pushes() -> None:
    store = TreeStore()
    base = store.build({"notes.md": File(b"v1", 1)})
    local = store.build({"notes.md": File(b"mine", 9)})
    remote = store.build({"notes.md": File(b"theirs", 5)})
    policies = ConflictPolicies(default="last-write-wins")
    plan = merge(store, base, local, remote, policies=policies)
    assert store.show(plan.merged_root) == {"notes.md": File(b"mine", 9)}
    assert brief(plan) == ([], [("both-modified", "notes.md", "local", None)])
    assert plan.push_needed


def test_last_write_wins_never_drops_a_type_clash() -> None:
    store = TreeStore()
    base = store.build({"x": b"1"})
    local = store.build({"x": {"in": b"2"}})
    remote = store.build({"x": File(b"3", mtime_ns=99)})
    plan = merge(store, base, local, remote, policies=ConflictPolicies(default="last-write-wins"))
    copy = f"x (conflicted copy {STAMP} from desktop)"
    assert store.show(plan.merged_root) == {"x": D, "x/in": b"2", copy: File(b"3", 99)}
    assert "saved as" in plan.conflicts[0].explanation


def test_manual_policy_keeps_both_and_flags() -> None:
    store = TreeStore()
    base = store.build({"doc": {"a.txt": b"1"}})
    local = store.build({"doc": {"a.txt": b"2"}})
    remote = store.build({"doc": {"a.txt": b"3"}})
    policies = ConflictPolicies(rules=(("doc/", "manual"),))
    plan = merge(store, base, local, remote, policies=policies)
    copy = f"doc/a (conflicted copy {STAMP} from laptop).txt"
    assert brief(plan)[1] == [("both-modified", "doc/a.txt", "remote", copy)]
    assert plan.conflicts[0].policy == "manual"
    assert "chunksync resolve" in plan.conflicts[0].explanation


def test_conflict_copy_of_a_conflict_copy_is_not_nested_and_avoids_taken_names() -> None:
    store = TreeStore()
    first = f"f (conflicted copy {STAMP} from laptop).txt"
    base = store.build({"f.txt": b"0"})
    local = store.build({"f.txt": b"1", first: b"older copy"})
    remote = store.build({"f.txt": b"2"})
    plan = merge(store, base, local, remote)
    second = f"f (conflicted copy {STAMP} from laptop 2).txt"
    assert store.show(plan.merged_root) == {"f.txt": b"2", first: b"older copy", second: b"1"}
    check_apply(store, local, plan)


# ----------------------------------------------------------------------- name clashes


def test_case_clash_keeps_both_and_reports() -> None:
    store = TreeStore()
    base = store.build({})
    local = store.build({"Readme.md": b"mine"})
    remote = store.build({"README.md": b"theirs"})
    plan = merge(store, base, local, remote)
    assert store.show(plan.merged_root) == {"README.md": b"theirs", "Readme.md": b"mine"}
    assert brief(plan) == (
        [("write", "README.md")],
        [("case-clash", "README.md", "remote", "Readme.md")],
    )
    assert "upper/lower case" in plan.conflicts[0].explanation


def test_nfc_names_from_both_sides_merge_as_one_name() -> None:
    # TreeEntry stores names NFC, so an NFD name from macOS and an NFC name from Linux
    # are the same entry; different content is then an ordinary both-added conflict.
    store = TreeStore()
    base = store.build({})
    local = store.build({"caf\u00e9.txt": b"mac"})
    remote = store.build({"caf\u00e9.txt": b"linux"})
    plan = merge(store, base, local, remote)
    assert [c.kind for c in plan.conflicts] == ["both-added"]


# ----------------------------------------------------------------- root special cases


def test_first_sync_without_base_adds_both_sides() -> None:
    store = TreeStore()
    local = store.build({"a": b"1", "same": b"s"})
    remote = store.build({"b": b"2", "same": b"s"})
    plan = merge(store, None, local, remote)
    assert store.show(plan.merged_root) == {"a": b"1", "b": b"2", "same": b"s"}
    assert brief(plan) == ([("write", "b")], [])
    assert plan.summary == {"added": 1, "modified": 0, "deleted": 0}


def test_empty_server_never_deletes_local_files() -> None:
    store = TreeStore()
    base = store.build({"a": b"1", "b": b"2"})
    plan = merge(store, base, base, None)
    assert plan.actions == () and plan.merged_root == base and plan.push_needed
    assert plan.summary == {"added": 2, "modified": 0, "deleted": 0}
    first = merge(store, None, store.build({}), None)
    assert first.actions == () and first.push_needed


def test_local_equals_remote_is_a_no_op_without_loading() -> None:
    store = TreeStore()
    base = store.build({"a": b"1"})
    local = store.build({"a": b"2"})
    store.loads.clear()
    plan = merge(store, base, local, local)
    assert (plan.actions, plan.conflicts, plan.push_needed, store.loads) == ((), (), False, [])


# ------------------------------------------------------------------- Merkle descent


def _wide(store: TreeStore, changed: bytes) -> tuple[ObjectId, list[ObjectId]]:
    spec: Spec = {f"dir{i}": {f"f{j}": f"{i}/{j}".encode() for j in range(5)} for i in range(20)}
    spec["hot"] = {"deep": {"file": changed}, "other": b"o"}
    root = store.build(spec)
    unchanged = [e.id for e in store.trees[root].entries if e.name.startswith("dir")]
    return root, [oid for oid in unchanged if oid is not None]


def test_unchanged_subtrees_are_never_loaded() -> None:
    store = TreeStore()
    base, cold = _wide(store, b"v1")
    spec = {e.name: e for e in store.trees[base].entries}
    hot = store.build({"deep": {"file": b"v1"}, "other": b"local"})
    local = store.put(Tree.of([*spec.values()][:-1] + [TreeEntry("hot", "dir", id=hot)]))
    remote, _ = _wide(store, b"v2")
    store.refuse.update(cold)
    store.loads.clear()
    plan = merge(store, base, local, remote)
    assert brief(plan) == ([("write", "hot/deep/file")], [])
    assert store.show(plan.merged_root)["hot/other"] == b"local"
    # root and hot on three sides; hot/deep only locally and remotely (base == local)
    assert len(store.loads) == 8


def test_take_remote_wholesale_loads_only_the_changed_path() -> None:
    store = TreeStore()
    base, cold = _wide(store, b"v1")
    remote, _ = _wide(store, b"v2")
    store.refuse.update(cold)
    store.loads.clear()
    plan = merge(store, base, base, remote)
    assert brief(plan) == ([("write", "hot/deep/file")], [])
    assert len(store.loads) == 6  # root, hot, hot/deep on the local and remote side


def test_missing_tree_is_a_clear_error() -> None:
    store = TreeStore()
    base = store.build({"a": b"1"})
    local = store.build({"a": b"2"})
    remote = store.build({"a": b"3"})
    del store.trees[remote]
    with pytest.raises(ObjectNotFound, match="needed for the merge"):
        merge(store, base, local, remote)


# --------------------------------------------------------------------- hostile trees


def _hostile_remote(store: TreeStore, name: str) -> ObjectId:
    entry = TreeEntry(name, "file", id=ObjectId(bytes(32)))
    return store.put(Tree.of([entry]))


@pytest.mark.parametrize(
    "name", [".chunksync", ".ChunkSync", "x" * 256]
)  # \\ and \n are legal on POSIX
def test_hostile_remote_name_is_refused_before_any_action(name: str) -> None:
    store = TreeStore()
    base = store.build({})
    with pytest.raises(UnsafePathError):
        merge(store, base, base, _hostile_remote(store, name))


def test_strict_portable_refuses_windows_names() -> None:
    store = TreeStore()
    base = store.build({})
    remote = store.build({"CON.txt": b"x"})
    assert merge(store, base, base, remote).actions[0].path == "CON.txt"
    with pytest.raises(UnsafePathError, match="reserved"):
        merge(store, base, base, remote, strict_portable=True)


def test_symlink_target_with_nul_is_refused() -> None:
    store = TreeStore()
    base = store.build({})
    remote = store.build({"l": Link("a\0b")})
    with pytest.raises(UnsafePathError, match="symlink target"):
        merge(store, base, base, remote)


# ------------------------------------------------------------------------ properties

CONTENTS = st.sampled_from(
    [b"1", b"2", b"3", File(b"1", executable=True), File(b"2", mtime_ns=5), Link("1"), Link("t")]
)
NAMES = st.sampled_from(["a", "b", "x", "y.txt", "Y.txt"])


def specs(depth: int) -> st.SearchStrategy[Spec]:
    if depth == 0:
        return st.dictionaries(NAMES, CONTENTS, max_size=3)
    return st.dictionaries(NAMES, st.one_of(CONTENTS, specs(depth - 1)), max_size=4)


@st.composite
def mutated(draw: st.DrawFn, spec: Spec, depth: int = 2) -> Spec:
    """One device's edits to ``spec``: keep, delete, replace, edit inside, add."""
    out: Spec = {}
    for name, value in spec.items():
        op = draw(st.sampled_from(["keep", "keep", "delete", "replace", "edit"]))
        if op == "keep":
            out[name] = value
        elif op == "replace":
            out[name] = draw(st.one_of(CONTENTS, specs(0)))
        elif op == "edit":
            inner = mutated(value, depth - 1) if isinstance(value, dict) else CONTENTS
            out[name] = draw(inner)
    added = draw(st.dictionaries(NAMES, st.one_of(CONTENTS, specs(0)), max_size=2))
    for name, value in added.items():
        out.setdefault(name, value)
    return out


@st.composite
def histories(draw: st.DrawFn) -> tuple[Spec, Spec, Spec]:
    base = draw(specs(2))
    return base, draw(mutated(base)), draw(mutated(base))


def _items(flat: dict[str, TreeEntry]) -> list[tuple[str, object, object, bool]]:
    return [(e.kind, e.id, e.target, e.executable) for e in flat.values() if e.kind != "dir"]


def _canonical(flat: dict[str, TreeEntry]) -> tuple[list[object], list[str]]:
    """The merged tree up to which version holds a name and which device made a copy."""
    items = sorted(
        (strip_conflict_tag(p), e.kind, e.id or b"", e.target or "", e.executable)
        for p, e in flat.items()
        if e.kind != "dir"
    )
    dirs = sorted(p for p, e in flat.items() if e.kind == "dir")
    return list(items), dirs


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(histories())
def test_convergence_either_order_gives_the_same_tree(history: tuple[Spec, Spec, Spec]) -> None:
    store = TreeStore()
    base, a, b = (store.build(spec) for spec in history)
    a_first = merge(store, base, b, a, device="B", remote_device="A")
    b_first = merge(store, base, a, b, device="A", remote_device="B")
    assert _canonical(store.flatten(a_first.merged_root)) == _canonical(
        store.flatten(b_first.merged_root)
    )


@FAST
@given(histories())
def test_no_version_lost_and_actions_reach_the_merged_tree(
    history: tuple[Spec, Spec, Spec],
) -> None:
    store = TreeStore()
    base, local, remote = (store.build(spec) for spec in history)
    plan = merge(store, base, local, remote)
    merged = store.flatten(plan.merged_root)
    base_flat = store.flatten(base)
    survivors = set(_items(merged))
    for side in (store.flatten(local), store.flatten(remote)):
        for path, entry in side.items():
            was = base_flat.get(path)
            if entry.kind != "dir" and not same_content(was, entry):  # this side made it
                assert _items({path: entry})[0] in survivors, f"lost {path}"
    for action in plan.actions:
        if action.op in ("delete", "rmdir"):
            assert action.expect is not None and base_flat.get(action.path) is not None
            assert base_flat[action.path].kind == action.expect.kind
    assert all(p.count("(conflicted copy") <= 1 for p in merged)
    check_apply(store, local, plan)


@FAST
@given(specs(2))
def test_idempotence_merging_a_merge_with_itself_does_nothing(spec: Spec) -> None:
    store = TreeStore()
    root = store.build(spec)
    plan = merge(store, root, root, root)
    assert (plan.actions, plan.conflicts, plan.push_needed) == ((), (), False)
    assert plan.merged_root == root
