"""The index carries a format version (issue 19): a new index is stamped, an older one
is migrated (or rebuilt) and says so, and a newer one is refused with a clear message
instead of being misread."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chunksync.storage import index_format
from chunksync.storage.index import Index
from chunksync.storage.index_format import INDEX_FORMAT, NewerIndex, read_format

pytestmark = pytest.mark.unit


def test_a_new_index_is_stamped(tmp_path: Path) -> None:
    Index.open(tmp_path / "index").close()
    assert read_format(tmp_path / "index") == INDEX_FORMAT


def test_an_index_from_before_versions_is_upgraded_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Index.open(tmp_path / "index") as index, index.write() as w:
        w.delete_meta("format")  # as older versions wrote it
        w.set_meta("base", b"ab" * 32)
    with caplog.at_level(logging.WARNING), Index.open(tmp_path / "index") as index:
        assert index.get_meta("base") == b"ab" * 32  # migrated in place, nothing lost
    assert read_format(tmp_path / "index") == INDEX_FORMAT
    assert any("upgraded from format 0 to 1" in r.getMessage() for r in caplog.records)


def test_an_old_format_without_a_migration_is_rebuilt_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Index.open(tmp_path / "index") as index, index.write() as w:
        w.set_meta("base", b"ab" * 32)
    monkeypatch.setattr(index_format, "INDEX_FORMAT", INDEX_FORMAT + 1)  # an upgrade...
    monkeypatch.setattr(index_format, "MIGRATIONS", {})  # ...that cannot migrate
    with caplog.at_level(logging.WARNING), Index.open(tmp_path / "index") as index:
        assert index.get_meta("base") is None
        assert index.get_meta("format") == str(INDEX_FORMAT + 1).encode()
    assert any("rebuilt" in r.getMessage() for r in caplog.records)
    assert list(tmp_path.glob("index.broken-*"))  # the old one moved aside, not deleted


def test_a_newer_index_is_refused_clearly(tmp_path: Path) -> None:
    with Index.open(tmp_path / "index") as index, index.write() as w:
        w.set_meta("format", str(INDEX_FORMAT + 1).encode())
        w.set_meta("base", b"ab" * 32)
    with pytest.raises(NewerIndex, match="written by a newer chunksync.*upgrade chunksync"):
        Index.open(tmp_path / "index")
    with pytest.raises(NewerIndex):  # still refused: the index was left as it was
        read_format(tmp_path / "index")
    assert not list(tmp_path.glob("index.broken-*"))
