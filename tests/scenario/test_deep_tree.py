"""Issue 9, failure 3: a directory nested ~600 levels deep stopped all syncing.

Every walk from disk to server and back (scan, tree build, diff, merge, graft, apply,
push, object fetch, restore, verify) used to recurse once per directory level, so a
deep enough folder raised RecursionError (exit 70) on every round until the user found
and removed it. These tests run the real CLI against a real server subprocess on
127.0.0.1 with a chain of 2,000 directories, at the default recursion limit.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.deep import chain_path, deep_tree_of, read_deep, remove_deep, write_deep

DEPTH = 2000
BOTTOM = chain_path(DEPTH, "bottom.txt")


@pytest.fixture
def deep_roots(tmp_path: Path) -> Iterator[list[Path]]:
    """Folders that may hold a deep chain ``d/d/...``: removed at the end without
    recursion (pytest's own cleanup uses shutil.rmtree, which would recurse)."""
    roots: list[Path] = []
    yield roots
    for root in roots:
        if (root / "d").is_dir():
            remove_deep(root, "d")


def test_directory_nested_2000_levels_syncs_both_ways(
    cli_world: CliWorld, deep_roots: list[Path], tmp_path: Path
) -> None:
    assert sys.getrecursionlimit() < DEPTH  # the default limit: nothing raised it
    w = cli_world
    a, b, restored = w.folder("laptop"), w.folder("desktop"), tmp_path / "restored"
    deep_roots.extend([a, b, restored])
    a.mkdir(parents=True)
    (a / "top.txt").write_text("near the top")
    write_deep(a, BOTTOM, b"at the bottom, v1")
    w.init("laptop")

    w.join("desktop")
    assert read_deep(b, BOTTOM) == b"at the bottom, v1"
    assert deep_tree_of(b) == deep_tree_of(a)

    write_deep(b, BOTTOM, b"edited at the bottom on the desktop")
    w.sync("desktop")
    w.sync("laptop")
    assert read_deep(a, BOTTOM) == b"edited at the bottom on the desktop"
    assert deep_tree_of(a) == deep_tree_of(b)
    status = json.loads(w.run("laptop", "status", str(a), "--json").output)
    assert status["local_changes_pending"] is False

    first = json.loads(w.run("laptop", "log", str(a), "--json").output)[0]["id"]
    w.run("laptop", "restore", str(a), "--snapshot", first, "--to", str(restored))
    assert read_deep(restored, BOTTOM) == b"at the bottom, v1"
    assert set(deep_tree_of(restored)) == set(deep_tree_of(a))
    assert "verified" in w.run("laptop", "verify", str(a)).output

    remove_deep(a, "d")
    w.sync("laptop")
    w.sync("desktop")
    assert not (b / "d").exists()
    assert deep_tree_of(b) == deep_tree_of(a)
    assert set(deep_tree_of(b)) == {"top.txt"}
