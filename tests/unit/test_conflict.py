"""Conflict rules: the classify table, conflicted-copy names, policies, explanations."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunksync.conflict import (
    ConflictPolicies,
    change_of,
    classify,
    conflict_name,
    explain,
    is_conflict_copy,
    name_clash,
    name_keeper,
    newer_side,
    strip_conflict_tag,
)
from chunksync.errors import ConfigError
from chunksync.objects import ObjectId, TreeEntry
from chunksync.paths import validate_tree_entry_name

pytestmark = pytest.mark.unit

WHEN = datetime(2026, 11, 25, 14, 3, 12)
TAG = "conflicted copy 2026-11-25 140312 from laptop"


def oid(n: int) -> ObjectId:
    return ObjectId(bytes([n]) * 32)


def file(n: int, *, mtime: int = 0, exe: bool = False) -> TreeEntry:
    return TreeEntry("e", "file", id=oid(n), size=n, mtime_ns=mtime, executable=exe)


def folder(n: int) -> TreeEntry:
    return TreeEntry("e", "dir", id=oid(100 + n))


def link(target: str) -> TreeEntry:
    return TreeEntry("e", "symlink", target=target)


F1, F2, F3, D1, D2, D3 = file(1), file(2), file(3), folder(1), folder(2), folder(3)

# (base, mine, theirs) -> (mine change, theirs change, outcome, conflict kind)
CLASSIFY = [
    ((None, None, None), ("unchanged", "unchanged", "keep", None)),
    ((F1, F1, F1), ("unchanged", "unchanged", "keep", None)),
    ((F1, file(1, mtime=9), F1), ("unchanged", "unchanged", "keep", None)),
    ((F1, F2, F1), ("modified", "unchanged", "take-mine", None)),
    ((F1, F1, F2), ("unchanged", "modified", "take-theirs", None)),
    ((F1, None, F1), ("deleted", "unchanged", "take-mine", None)),
    ((F1, F1, None), ("unchanged", "deleted", "take-theirs", None)),
    ((None, F1, None), ("added", "unchanged", "take-mine", None)),
    ((None, None, F1), ("unchanged", "added", "take-theirs", None)),
    ((F1, F2, F2), ("modified", "modified", "same", None)),
    ((F1, file(2, mtime=1), file(2, mtime=2)), ("modified", "modified", "same", None)),
    ((F1, None, None), ("deleted", "deleted", "same", None)),
    ((None, F1, F1), ("added", "added", "same", None)),
    ((F1, F2, F3), ("modified", "modified", "keep-both", "both-modified")),
    ((F1, file(1, exe=True), F2), ("modified", "modified", "keep-both", "both-modified")),
    ((None, F1, F2), ("added", "added", "keep-both", "both-added")),
    ((F1, F2, None), ("modified", "deleted", "take-mine", "modify-delete")),
    ((F1, None, F2), ("deleted", "modified", "take-theirs", "modify-delete")),
    ((F1, D1, F2), ("modified", "modified", "keep-both", "type-clash")),
    ((F1, F2, D1), ("modified", "modified", "keep-both", "type-clash")),
    ((None, link("a"), F1), ("added", "added", "keep-both", "type-clash")),
    ((link("a"), link("b"), link("c")), ("modified", "modified", "keep-both", "both-modified")),
    ((link("a"), link("b"), link("b")), ("modified", "modified", "same", None)),
    ((D1, D2, D3), ("modified", "modified", "recurse", None)),
    ((None, D1, D2), ("added", "added", "recurse", None)),
    ((F1, D1, D2), ("modified", "modified", "recurse", None)),
    ((D1, D2, None), ("modified", "deleted", "recurse", None)),
    ((D1, None, D2), ("deleted", "modified", "recurse", None)),
    ((F1, D1, None), ("modified", "deleted", "take-mine", "modify-delete")),
    ((D1, D1, D2), ("unchanged", "modified", "take-theirs", None)),
    ((D1, D1, None), ("unchanged", "deleted", "take-theirs", None)),
]


@pytest.mark.parametrize(
    ("entries", "expected"), CLASSIFY, ids=[f"row{i}" for i, _ in enumerate(CLASSIFY)]
)
def test_classify_table(
    entries: tuple[TreeEntry | None, ...], expected: tuple[str, str, str, str | None]
) -> None:
    verdict = classify(*entries)
    assert (verdict.mine, verdict.theirs, verdict.outcome, verdict.conflict) == expected


def test_change_of_ignores_mtime_but_not_exec_bit() -> None:
    assert change_of(F1, file(1, mtime=5)) == "unchanged"
    assert change_of(F1, file(1, exe=True)) == "modified"
    assert change_of(None, None) == "unchanged"


def test_name_keeper_and_newer_side() -> None:
    assert name_keeper(D1, F1) == "local"
    assert name_keeper(F1, D1) == "remote"
    assert name_keeper(F1, F2) == "remote"
    assert newer_side(file(1, mtime=5), file(2, mtime=4)) == "local"
    assert newer_side(file(1, mtime=4), file(2, mtime=4)) == "remote"


# ---------------------------------------------------------------------------- naming

NAMES = [
    ("report.docx", f"report ({TAG}).docx"),
    ("dir/sub/report.docx", f"dir/sub/report ({TAG}).docx"),
    ("archive.tar.gz", f"archive.tar ({TAG}).gz"),
    ("Makefile", f"Makefile ({TAG})"),
    (".bashrc", f".bashrc ({TAG})"),
    (".config.json", f".config ({TAG}).json"),
    ("trailing.", f"trailing. ({TAG})"),
    ("notes.about the trip", f"notes.about the trip ({TAG})"),
    ("résumé.pdf", f"résumé ({TAG}).pdf"),
    ("日本語.txt", f"日本語 ({TAG}).txt"),
    (f"report ({TAG}).docx", f"report ({TAG}).docx"),
    ("report (conflicted copy 2025-01-02 030405 from desk 3).docx", f"report ({TAG}).docx"),
    ("d/.bashrc (conflicted copy 2025-01-02 030405 from desk)", f"d/.bashrc ({TAG})"),
]


@pytest.mark.parametrize(("path", "expected"), NAMES)
def test_conflict_name(path: str, expected: str) -> None:
    assert conflict_name(path, "laptop", WHEN, set()) == expected
    assert is_conflict_copy(expected) and not is_conflict_copy(strip_conflict_tag(expected))


def test_conflict_name_skips_taken_names_inside_the_parenthesis() -> None:
    first = f"report ({TAG}).docx"
    second = f"report ({TAG} 2).docx"
    assert conflict_name("report.docx", "laptop", WHEN, {first}) == second
    assert conflict_name("d/report.docx", "laptop", WHEN, {"d/" + first}) == "d/" + second
    assert conflict_name("report.docx", "laptop", WHEN, {first, second}).endswith(f"{TAG} 3).docx")
    assert conflict_name(second, "laptop", WHEN, {first}) == second  # a copy of a copy


def test_conflict_name_cleans_device_names() -> None:
    name = conflict_name("a.txt", "Bob's PC (work)/x\n", WHEN, set())
    assert name == "a (conflicted copy 2026-11-25 140312 from Bob's PC [work]_x_).txt"
    assert strip_conflict_tag(name) == "a.txt"
    assert "unknown device" in conflict_name("a.txt", "  ", WHEN, set())


def test_conflict_name_uses_the_given_time_as_is() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert conflict_name("a", "pc", when, ()) == "a (conflicted copy 2026-01-02 030405 from pc)"


def test_conflict_name_fits_the_name_length_limit() -> None:
    long = "é" * 127 + ".txt"  # 258 bytes of UTF-8 before the tag
    name = conflict_name("d/" + long, "laptop", WHEN, set())
    base = name.rpartition("/")[2]
    assert len(base.encode()) <= 255 and base.endswith(f"({TAG}).txt")
    validate_tree_entry_name(base)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s), st.text(max_size=20))
def test_conflict_name_is_a_valid_copy_and_never_nested(name: str, device: str) -> None:
    copy = conflict_name(name, device, WHEN, set())
    assert is_conflict_copy(copy)
    assert conflict_name(copy, device, WHEN, set()) == copy
    assert strip_conflict_tag(copy) == unicodedata.normalize("NFC", strip_conflict_tag(name))
    assert "/" not in copy


def test_name_clash() -> None:
    assert name_clash("Readme.md", "README.md") == "case-clash"
    assert name_clash("caf\u00e9", "cafe\u0301") == "nfc-clash"
    assert name_clash("a", "a") is None
    assert name_clash("a", "b") is None


# -------------------------------------------------------------------------- policies


def test_policies_last_match_wins() -> None:
    policies = ConflictPolicies(
        rules=(("*.md", "last-write-wins"), ("docs/", "manual"), ("docs/keep.md", "keep-both"))
    )
    assert policies.for_path("a.txt") == "keep-both"
    assert policies.for_path("sub/notes.md") == "last-write-wins"
    assert policies.for_path("docs/notes.md") == "manual"
    assert policies.for_path("docs/keep.md") == "keep-both"
    assert ConflictPolicies(default="manual").for_path("x") == "manual"


def test_policies_refuse_unknown_policy_and_empty_pattern() -> None:
    with pytest.raises(ConfigError, match="unknown policy"):
        ConflictPolicies(rules=(("*.md", "newest"),))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="empty"):
        ConflictPolicies(rules=(("  ", "manual"),))


# ---------------------------------------------------------------------- explanations


def test_explanations_say_what_was_kept_and_where_the_other_is() -> None:
    copy = f"f ({TAG}).txt"
    text = explain(
        "both-modified", "f.txt", "remote", copy, "keep-both", device="laptop", remote_device="desk"
    )
    assert '"f.txt"' in text and copy in text and "desk" in text and "laptop" in text
    deleted = explain(
        "modify-delete", "f.txt", "local", None, "keep-both", device="laptop", remote_device=None
    )
    assert "deleted on another device" in deleted and "changed on this device" in deleted
    lww = explain(
        "both-modified", "f.txt", "local", None, "last-write-wins", device="l", remote_device="d"
    )
    assert "newer version from this device" in lww and "history" in lww
