"""Failure 5 end to end: a peer holding the key commits a tree entry with an mtime no
filesystem can take; every other device refuses it in one line and changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chunksync.crypto.seal import seal
from chunksync.folder import SyncFolder
from chunksync.objects import (
    ChunkRef,
    Commit,
    FileManifest,
    ObjectId,
    ObjectKind,
    Tree,
    TreeEntry,
    id_from_hex,
    short_id,
)
from chunksync.sync.objects_io import ObjectReader
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.devices import tree_of


async def _commit_out_of_range_mtime(folder: Path) -> ObjectId:
    """What a buggy peer with the folder key could upload: the current tree plus one
    file whose mtime is 10**30 ns. Returns the bad tree's id."""
    async with SyncFolder.open(folder) as f:
        keys, store = f.keys, f.store
        head = await store.get_head()
        assert head.head is not None
        reader = ObjectReader(keys, f.index, store)
        parent = await reader.commit(id_from_hex(head.head))
        await reader.ensure_tree_closure(parent.tree)
        data = b"written by a buggy peer"
        cid = keys.chunk_id(data)
        manifest = FileManifest(len(data), (ChunkRef(cid, len(data)),)).encode()
        mid = keys.meta_id(manifest)
        entry = TreeEntry("bad-mtime.txt", "file", mid, len(data))
        object.__setattr__(entry, "mtime_ns", 10**30)  # the constructor itself refuses it now
        tree = Tree.of([*reader.load_tree(parent.tree).entries, entry]).encode()
        tid = keys.meta_id(tree)
        commit = Commit(
            tid, (id_from_hex(head.head),), parent.seq + 1, "laptop", "alice", 1
        ).encode()
        coid = keys.meta_id(commit)
        await store.put_many(
            [
                (cid, seal(keys, ObjectKind.CHUNK, cid, data)),
                (mid, seal(keys, ObjectKind.FILE, mid, manifest)),
                (tid, seal(keys, ObjectKind.TREE, tid, tree)),
                (coid, seal(keys, ObjectKind.COMMIT, coid, commit)),
            ]
        )
        await store.cas_head(head.head, coid.hex())
        return tid


def test_out_of_range_mtime_from_a_peer_fails_in_one_line_and_changes_nothing(
    cli_world: CliWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "notes.txt").write_text("shared")
    w.sync("laptop")
    b = w.join("desktop")
    (b / "local.txt").write_text("desktop's own, not yet synced")
    monkeypatch.setenv("CHUNKSYNC_HOME", str(w.home("laptop")))
    bad_tree = asyncio.run(_commit_out_of_range_mtime(a))
    before = tree_of(b)
    for _ in range(2):  # and again: a clear refusal every time, never an internal error
        result = w.run("desktop", "sync", str(b), ok=False)
        assert result.exit_code == 3, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert short_id(bad_tree) in lines[0] and "mtime_ns" in lines[0]
        assert "Traceback" not in result.output
    assert tree_of(b) == before
    assert not (b / "bad-mtime.txt").exists()
