"""purge takes a file out of the whole history and its bytes off the server's disk."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from chunksync import folder_key
from chunksync.config import FolderPaths
from chunksync.crypto.folder_keys import FolderKeys
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.integration.test_lifecycle_prune import server_admin

MARKER = b"the leaked secret: 7b1e3f0c-purge-me-" * 100


def _stored_blob(data: Path, oid: bytes) -> bytes:
    """The ciphertext the server holds for ``oid``, read from its pack."""
    with sqlite3.connect(data / "objects" / "index.sqlite") as db:
        row = db.execute(
            "SELECT ns, pack, offset, length FROM objects WHERE oid = ?", (oid,)
        ).fetchone()
    assert row is not None, "the marker's chunk is not on the server"
    ns, pack, offset, length = row
    with open(data / "objects" / ns / "packs" / f"{pack}.pack", "rb") as f:
        f.seek(offset)
        return f.read(length)


def _everything(data: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in data.rglob("*") if p.is_file()]


def test_purge_removes_a_marker_from_history_and_from_the_disk(
    cli_world: CliWorld, tmp_path
) -> None:
    w = cli_world
    a = w.folder("laptop")
    a.mkdir(parents=True)
    (a / "notes.txt").write_text("ordinary notes\n")
    (a / "private").mkdir()
    (a / "private" / "secret.txt").write_bytes(MARKER)
    w.init("laptop")
    b = w.join("desktop")
    (a / "notes.txt").write_text("ordinary notes, edited\n")
    w.sync("laptop")
    w.sync("desktop")

    with pytest.MonkeyPatch.context() as mp:  # the key is in the laptop's own home
        mp.setenv("CHUNKSYNC_HOME", str(w.home("laptop")))
        keys = FolderKeys(folder_key.load(FolderPaths(a)))
    chunk_id = keys.chunk_id(MARKER)
    blob = _stored_blob(w.server.data_dir, chunk_id)
    needles = [chunk_id, chunk_id.hex().encode(), blob[40:104], blob[-64:]]
    found = [p for p, data in _everything(w.server.data_dir) if any(n in data for n in needles)]
    assert found  # the test can see the marker before the purge

    out = json.loads(w.run("laptop", "purge", str(a), "private/secret.txt", "--json").output)
    assert out["purged_snapshots"] >= 2 and out["head"]
    leftovers = [
        str(p) for p, data in _everything(w.server.data_dir) if any(n in data for n in needles)
    ]
    assert leftovers == []

    # devices drop their copies at their next sync; everything else is intact
    w.sync("desktop")
    w.sync("laptop")
    assert not (b / "private" / "secret.txt").exists()
    assert not (a / "private" / "secret.txt").exists()
    assert (b / "notes.txt").read_text() == "ordinary notes, edited\n"
    assert server_admin(w.server.data_dir, "check").returncode == 0
    assert "verified" in w.run("desktop", "verify", str(b)).output
    audit = server_admin(w.server.data_dir, "audit", "--json")
    actions = [r["action"] for r in json.loads(audit.stdout)]
    assert "lifecycle.purge" in actions and "lifecycle.prune" in actions
    log = json.loads(w.run("laptop", "log", str(a), "--json").output)
    assert len(log) == 3  # the history stays one verified chain
    restored = tmp_path / "restored"
    w.run("laptop", "restore", str(a), "--snapshot", log[-1]["id"], "--to", str(restored))
    assert sorted(p.name for p in restored.rglob("*")) == ["notes.txt", "private"]
