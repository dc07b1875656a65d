"""Merge policy by path, the merge decision table, and the planner's use of merges.

All pure: ``decide`` per case, the policy file parsed and edited, and ``plan_merge``
with and without the engine's content merge for a file both sides changed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from chunksync.conflict import ConflictPolicies
from chunksync.errors import ConfigError, UserError
from chunksync.mergepolicy import (
    POLICY_FILE,
    MergeResolution,
    decide,
    effective_policies,
    format_of,
    parse_policy_file,
    read_policy_file,
    set_policy,
)
from chunksync.objects import ObjectId, TreeEntry
from chunksync.sync.automerge import merge_message, merges_in
from chunksync.sync.plan import Plan, plan_merge
from tests.helpers.trees import File, TreeStore, apply_actions, comparable

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 14, 3, 12)


def f(size: int = 10, kind: str = "file") -> TreeEntry:
    oid = ObjectId(bytes([size % 256]) * 32) if kind != "symlink" else None
    return TreeEntry("x", kind, id=oid, size=size, target="t" if kind == "symlink" else None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "base", "mine", "theirs", "path", "want"),
    [
        ("merge", f(), f(11), f(12), "a.txt", "text"),
        ("merge", f(), f(11), f(12), "conf/settings.JSON", "json"),
        ("keep-both", f(), f(11), f(12), "a.txt", "the policy for this path is keep-both"),
        ("manual", f(), f(11), f(12), "a.txt", "the policy for this path is manual"),
        ("merge", None, f(11), f(12), "a.txt", "no common version"),
        ("merge", f(), f(11), f(12, "dir"), "a.txt", "only files"),
        ("merge", f(), f(5 << 20), f(12), "a.txt", "limit"),
    ],
)
def test_decide_table(policy, base, mine, theirs, path, want) -> None:
    got = decide(policy, base, mine, theirs, path)
    assert got == want if want in ("text", "json") else want in got


def test_format_of() -> None:
    assert format_of("a/b.json") == "json" and format_of("a/b.md") == "text"


def test_defaults_merge_text_types_and_keep_both_otherwise() -> None:
    policies = effective_policies(ConflictPolicies(), None)
    assert policies.for_path("notes/today.md") == "merge"
    assert policies.for_path("settings.json") == "merge"
    assert policies.for_path("photo.jpg") == "keep-both"
    assert policies.for_path("report.docx") == "keep-both"


def test_device_rules_and_policy_file_override_defaults(tmp_path: Path) -> None:
    (tmp_path / POLICY_FILE).write_text("# team rules\nlogs/*.txt last-write-wins\n*.csv manual\n")
    own = ConflictPolicies(rules=(("*.md", "keep-both"), ("*.csv", "merge")))
    policies = effective_policies(own, tmp_path)
    assert policies.for_path("a.md") == "keep-both"
    assert policies.for_path("logs/x.txt") == "last-write-wins"
    assert policies.for_path("b.txt") == "merge"
    assert policies.for_path("t.csv") == "manual"  # the synced file comes last
    # a device default other than keep-both is meant for every path
    assert effective_policies(ConflictPolicies(default="manual"), None).for_path("a.md") == "manual"


def test_policy_file_errors_name_the_line() -> None:
    with pytest.raises(ConfigError, match="line 2"):
        parse_policy_file("*.md merge\n*.txt sometimes\n")
    with pytest.raises(ConfigError, match="line 1"):
        parse_policy_file("merge\n")
    # a sync skips a bad line instead of stopping
    assert parse_policy_file("*.txt sometimes\n*.md manual\n", strict=False) == (
        ("*.md", "manual"),
    )


def test_set_policy_adds_replaces_and_removes(tmp_path: Path) -> None:
    set_policy(tmp_path, "*.md", "merge")
    set_policy(tmp_path, "docs/*.txt", "manual")
    set_policy(tmp_path, "*.md", "keep-both")
    assert read_policy_file(tmp_path) == (("docs/*.txt", "manual"), ("*.md", "keep-both"))
    set_policy(tmp_path, "docs/*.txt", None)
    assert read_policy_file(tmp_path) == (("*.md", "keep-both"),)
    with pytest.raises(UserError):
        set_policy(tmp_path, "docs/*.txt", None)
    with pytest.raises(UserError):
        set_policy(tmp_path, "*.md", "sometimes")


def test_merge_note_round_trip() -> None:
    assert merges_in("local versions that lost") == []
    assert merges_in("automatic merge of 1 file(s): {broken") == []


# ---------------------------------------------------------------------- the planner


def plan(store: TreeStore, base, local, remote, merges=None) -> Plan:  # type: ignore[no-untyped-def]
    result = plan_merge(
        base,
        local,
        remote,
        load_tree=store.load_tree,
        tree_id=store.tree_id,
        device="laptop",
        remote_device="desktop",
        now=NOW,
        policies=effective_policies(ConflictPolicies(), None),
        merges=merges,
    )
    store.absorb(result)
    return result


def trees(store: TreeStore) -> tuple[ObjectId, ObjectId, ObjectId]:
    base = store.build({"notes.md": File(b"v1", 1), "pic.jpg": File(b"p", 1)})
    local = store.build({"notes.md": File(b"mine", 5), "pic.jpg": File(b"p", 1)})
    remote = store.build({"notes.md": File(b"theirs", 9), "pic.jpg": File(b"p", 1)})
    return base, local, remote


def test_without_an_answer_a_text_conflict_is_a_candidate_and_a_copy() -> None:
    store = TreeStore()
    base, local, remote = trees(store)
    result = plan(store, base, local, remote)
    assert [c.path for c in result.merge_candidates] == ["notes.md"]
    assert result.auto_merges == ()
    assert len(result.conflicts) == 1 and result.conflicts[0].policy == "keep-both"


def test_an_answer_for_these_versions_merges_without_a_copy() -> None:
    store = TreeStore()
    base, local, remote = trees(store)
    cand = plan(store, base, local, remote).merge_candidates[0]
    merged = store.load_tree(store.build({"notes.md": File(b"merged", 9)})).get("notes.md")
    assert merged is not None
    key = MergeResolution.key_of(cand.base, cand.mine, cand.theirs)
    result = plan(store, base, local, remote, {"notes.md": MergeResolution(key, merged, "text")})
    assert result.conflicts == () and result.merge_candidates == ()
    assert [(a.op, a.path) for a in result.actions] == [("write", "notes.md")]
    assert store.show(result.merged_root)["notes.md"] == File(b"merged", 9)
    after = apply_actions(store.flatten(local), result.actions)
    assert comparable(after) == comparable(store.flatten(result.merged_root))
    assert merges_in(merge_message(result.auto_merges, "laptop", "desktop")) == [
        {"path": "notes.md", "how": "text", "mine": "laptop", "theirs": "desktop"}
    ]


def test_a_stale_or_refused_answer_keeps_the_copy() -> None:
    store = TreeStore()
    base, local, remote = trees(store)
    merged = store.load_tree(store.build({"notes.md": File(b"merged", 9)})).get("notes.md")
    stale = MergeResolution((None, None, None), merged, "text")
    result = plan(store, base, local, remote, {"notes.md": stale})
    assert result.auto_merges == () and len(result.conflicts) == 1
    cand = result.merge_candidates[0]
    key = MergeResolution.key_of(cand.base, cand.mine, cand.theirs)
    refused = MergeResolution(key, reason="both sides changed the same lines")
    result = plan(store, base, local, remote, {"notes.md": refused})
    assert result.merge_candidates == () and len(result.conflicts) == 1
    assert "both sides changed the same lines" in result.conflicts[0].explanation
