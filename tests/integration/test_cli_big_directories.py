"""Every command that walks trees understands a directory stored in parts: join,
sync, log PATH, restore (whole and one path) and verify, through the real CLI and
server, on a 600-entry directory."""

from __future__ import annotations

import json

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.devices import tree_of

ENTRIES = 600  # ~85 KB of listing: about twenty parts


def test_a_split_directory_syncs_logs_restores_and_verifies(cli_world: CliWorld, tmp_path) -> None:
    w = cli_world
    a = w.folder("laptop")
    (a / "big").mkdir(parents=True)
    for i in range(ENTRIES):
        (a / "big" / f"file-{i:04d}.txt").write_text(f"v1 {i}\n")
    w.init("laptop")
    b = w.join("desktop")
    assert tree_of(a) == tree_of(b)

    (b / "big" / "file-0300.txt").write_text("v2 from desktop\n")
    (b / "big" / "file-0301.txt").unlink()
    w.sync("desktop")
    w.sync("laptop")
    assert tree_of(a) == tree_of(b)
    assert (a / "big" / "file-0300.txt").read_text() == "v2 from desktop\n"

    history = json.loads(w.run("laptop", "log", str(a), "big/file-0300.txt", "--json").output)
    assert [h["change"] for h in history] == ["added", "modified"]
    first = json.loads(w.run("laptop", "log", str(a), "--json").output)[0]["id"]
    out = tmp_path / "restored"
    w.run("laptop", "restore", str(a), "--snapshot", first, "--to", str(out))
    assert len(list((out / "big").iterdir())) == ENTRIES
    assert (out / "big" / "file-0301.txt").read_text() == "v1 301\n"
    one = tmp_path / "one"
    w.run("laptop", "restore", str(a), "--snapshot", first, "big/file-0599.txt", "--to", str(one))
    assert (one / "big" / "file-0599.txt").read_text() == "v1 599\n"
    assert "verified" in w.run("desktop", "verify", str(b)).output
