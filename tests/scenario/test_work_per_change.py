"""A change in one directory costs work for that directory and its ancestors only: a
sync round after one edit decodes as many trees when 40 other directories sit beside it
as when 400 do (counted, not timed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import chunksync.sync.objects_io
import chunksync.treecache
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.objects import ObjectKind, decode_object
from chunksync.transport.memory import MemoryChunkStore
from chunksync.treecache import TREES
from tests.helpers.devices import Device, tree_of

pytestmark = pytest.mark.scenario


async def _decoded_for_one_edit(
    tmp_path: Path, keys: FolderKeys, dirs: int, monkeypatch: pytest.MonkeyPatch
) -> Counter[str]:
    store = MemoryChunkStore()
    a = Device("a", tmp_path / f"a{dirs}", store, keys)
    b = Device("b", tmp_path / f"b{dirs}", store, keys)
    try:
        for d in range(dirs):  # the bulk of the folder, beside the edited directory
            for f in range(3):
                a.write(f"bulk/d{d:04d}/f{f}.txt", f"{d}.{f}")
        a.write("work/d0007/f1.txt", "original")
        await a.sync()
        await b.sync()
        a.write("work/d0007/f1.txt", "edited")
        TREES._trees.clear()  # a daemon's cache may hold anything: count from cold
        counts: Counter[str] = Counter()

        def counting(kind, data, oid=None):  # type: ignore[no-untyped-def]
            if kind == ObjectKind.TREE:
                counts["trees decoded"] += 1
            return decode_object(kind, data, oid)

        monkeypatch.setattr(chunksync.treecache, "decode_object", counting)
        monkeypatch.setattr(chunksync.sync.objects_io, "decode_object", counting)
        await a.engine().sync(dirty={"work/d0007"})
        await b.engine().sync(dirty=set())  # b pulls the edit
        monkeypatch.undo()
        assert b.read("work/d0007/f1.txt") == b"edited"
        assert tree_of(a.root) == tree_of(b.root)
        return counts
    finally:
        a.close()
        b.close()


async def test_trees_decoded_for_one_edit_do_not_grow_with_the_folder(
    tmp_path: Path, folder_keys: FolderKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = await _decoded_for_one_edit(tmp_path, folder_keys, 40, monkeypatch)
    large = await _decoded_for_one_edit(tmp_path, folder_keys, 400, monkeypatch)
    assert small == large, (small, large)
    # root, work, work/d0007: old and new, local and remote, on both devices
    assert 0 < large["trees decoded"] <= 24
