"""Ignore rules: gitignore syntax, per-device rules, the state directory."""

from __future__ import annotations

from pathlib import Path

from chunksync.ignore import DEFAULT_IGNORES, IgnoreRules


def test_gitignore_semantics() -> None:
    rules = IgnoreRules(("*.log", "build/", "!keep.log", "/top.txt", "docs/**/*.tmp"))
    assert rules.is_ignored("a.log", False) and rules.is_ignored("x/y/a.log", False)
    assert not rules.is_ignored("keep.log", False)
    assert rules.is_ignored("build", True) and not rules.is_ignored("build", False)
    assert rules.is_ignored("src/build", True)
    assert rules.is_ignored("top.txt", False) and not rules.is_ignored("sub/top.txt", False)
    assert rules.is_ignored("docs/a/b/c.tmp", False)
    assert not rules.is_ignored("src/main.py", False)


def test_state_dir_always_ignored_and_cannot_be_reincluded() -> None:
    rules = IgnoreRules(("!.chunksync", "!.chunksync/**"))
    assert rules.is_ignored(".chunksync", True)
    assert rules.is_ignored(".chunksync/index/data.mdb", False)
    assert rules.is_ignored("nested/.chunksync", True)
    assert rules.is_ignored("nested/.ChunkSync/key", False)  # refused from servers, so never sent
    assert not IgnoreRules().is_ignored("", True)


def test_load_combines_shared_and_local_rules(tmp_path: Path) -> None:
    (tmp_path / ".chunksyncignore").write_text("*.o\n")
    (tmp_path / ".chunksync").mkdir()
    (tmp_path / ".chunksync" / "ignore").write_text("private/\n!keep.o\n")
    rules = IgnoreRules.load(tmp_path)
    assert rules.is_ignored("a.o", False) and not rules.is_ignored("keep.o", False)
    assert rules.is_ignored("private", True)
    assert not rules.is_ignored(".chunksyncignore", False)
    assert IgnoreRules.load(tmp_path / "missing").lines == DEFAULT_IGNORES
    assert rules.digest != IgnoreRules.load(tmp_path / "missing").digest
