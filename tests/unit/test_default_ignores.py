"""Default ignores: OS, office, editor and download leftovers are not synced unless a
``!pattern`` in ``.chunksyncignore`` or ``.chunksync/ignore`` re-includes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from chunksync.ignore import IgnoreRules

JUNK = [
    ".DS_Store",
    "sub/.DS_Store",
    "Thumbs.db",
    "thumbs.db",
    "ehthumbs.db",
    "desktop.ini",
    "Desktop.ini",
    ".~lock.report.odt#",
    "~$report.docx",
    "a/~$budget.xlsx",
    ".#notes.org",
    ".notes.txt.swp",
    "x.swo",
    "film.mkv.part",
    "setup.exe.crdownload",
    "big.iso.download",
    ".fuse_hidden0000001",
    ".nfs000000001",
    "deep/er/.nfs1234",
]
KEPT = [
    "notes.txt",
    "draft.txt~",
    "report.docx",
    "lock.txt",
    "partial.txt",
    "thumbs.dbx",
    "~tilde.txt",
    "swp",
    "a/b/c.md",
]


@pytest.mark.parametrize("path", JUNK)
def test_leftover_files_are_ignored_by_default(tmp_path: Path, path: str) -> None:
    assert IgnoreRules.load(tmp_path).is_ignored(path, False)


@pytest.mark.parametrize("path", KEPT)
def test_ordinary_files_and_backups_are_not_ignored_by_default(tmp_path: Path, path: str) -> None:
    assert not IgnoreRules.load(tmp_path).is_ignored(path, False)


def test_trash_directories_are_ignored_by_default(tmp_path: Path) -> None:
    rules = IgnoreRules.load(tmp_path)
    assert rules.is_ignored(".Trash-1000", True) and rules.is_ignored("usb/.Trash-0", True)
    assert not rules.is_ignored("Trash", True)


def test_bang_patterns_re_include_defaults(tmp_path: Path) -> None:
    (tmp_path / ".chunksyncignore").write_text("!*.part\n")
    (tmp_path / ".chunksync").mkdir()
    (tmp_path / ".chunksync" / "ignore").write_text("!.DS_Store\n")
    rules = IgnoreRules.load(tmp_path)
    assert not rules.is_ignored("film.mkv.part", False)
    assert not rules.is_ignored("sub/.DS_Store", False)
    assert rules.is_ignored("Thumbs.db", False)


def test_defaults_can_be_left_out(tmp_path: Path) -> None:
    assert not IgnoreRules.load(tmp_path, defaults=False).is_ignored(".DS_Store", False)
