"""Retention policies decide like restic's ``forget``: per rule, the newest snapshot of
each of the last N units that have one; a snapshot any rule keeps is kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chunksync.errors import UserError
from chunksync.objects import ChunkRef, Commit, FileManifest, ObjectKind, Tree, TreeEntry
from chunksync.reachability import children
from chunksync.retention import Policy, Stamped, decide, parse_duration

pytestmark = pytest.mark.unit


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


SNAPS = [
    Stamped("a", _at("2026-01-01T10:00")),
    Stamped("b", _at("2026-01-01T10:30")),  # same hour and day as a, newer
    Stamped("c", _at("2026-01-02T09:00")),
    Stamped("d", _at("2026-01-09T09:00")),  # another ISO week
    Stamped("e", _at("2026-02-01T09:00")),  # another month
    Stamped("f", _at("2026-02-01T12:00")),
]


def test_keep_last_and_buckets() -> None:
    d = decide(Policy(last=2), SNAPS)
    assert set(d.keep) == {"e", "f"} and d.forget == ["a", "b", "c", "d"]
    d = decide(Policy(daily=3), SNAPS)
    assert set(d.keep) == {"f", "d", "c"}  # newest of each of the 3 newest days
    d = decide(Policy(monthly=5), SNAPS)
    assert set(d.keep) == {"f", "d"}  # only two months have snapshots
    d = decide(Policy(weekly=2, hourly=1), SNAPS)
    assert d.keep["f"] == ["hourly snapshot", "weekly snapshot"]
    assert "d" in d.keep and "a" in d.forget


def test_keep_within_counts_back_from_the_newest_snapshot() -> None:
    d = decide(Policy(within="1m"), SNAPS)  # 30 days before 2026-02-01T12:00
    assert set(d.keep) == {"d", "e", "f"}  # c is 30 days and 3 hours older
    assert parse_duration("1y2m3d4h") == ((365 + 60 + 3) * 24 + 4) * 3600
    with pytest.raises(UserError):
        parse_duration("3 weeks")


def test_protected_snapshots_are_kept_with_their_reason() -> None:
    d = decide(Policy(last=1), SNAPS, {"a": "a base of device x", "zz": "unknown ids ignored"})
    assert d.keep["a"] == ["a base of device x"] and "zz" not in d.keep
    assert d.forget == ["b", "c", "d", "e"]


def test_an_empty_policy_never_forgets_everything() -> None:
    with pytest.raises(UserError, match="no policy"):
        decide(Policy(), SNAPS)
    with pytest.raises(UserError):
        Policy(last=-1)
    assert Policy.from_json(Policy(daily=7, within="2d").to_json()) == Policy(daily=7, within="2d")
    with pytest.raises(UserError):
        Policy.from_json({"dayly": 3})


def test_children_lists_what_each_kind_points_at() -> None:
    cid, mid, tid, sub = (bytes([n]) * 32 for n in (1, 2, 3, 4))
    manifest = FileManifest(size=5, chunks=(ChunkRef(cid, 5),))
    assert children(ObjectKind.FILE, manifest) == [(ObjectKind.CHUNK, cid)]
    tree = Tree.of(
        [
            TreeEntry("d", "dir", id=sub),
            TreeEntry("f", "file", id=mid, size=5),
            TreeEntry("l", "symlink", target="f"),
        ]
    )
    assert children(ObjectKind.TREE, tree) == [(ObjectKind.TREE, sub), (ObjectKind.FILE, mid)]
    commit = Commit(tree=tid, parents=(sub,), seq=2, device="d", author="a", time_ns=1)
    assert children(ObjectKind.COMMIT, commit) == [(ObjectKind.TREE, tid)]
    assert children(ObjectKind.COMMIT, commit, parents=True)[1] == (ObjectKind.COMMIT, sub)
    assert children(ObjectKind.CHUNK, b"leaf") == []
