"""Convergence of several devices, and what a change costs on the server."""

from __future__ import annotations

import itertools
import os

import pytest

from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.devices import Device, tree_of


def _server_bytes(store: MemoryChunkStore) -> int:
    return sum(len(b) for b in store._blobs.values())


@pytest.mark.parametrize("order", list(itertools.permutations("abc")))
async def test_three_devices_edit_one_file_in_every_order(tmp_path, folder_keys, order):
    store = MemoryChunkStore()
    devs = {n: Device(n, tmp_path / n, store, folder_keys) for n in "abc"}
    try:
        devs["a"].write("plan.txt", "original")
        for n in "abc":
            await devs[n].sync()
        for n in "abc":
            devs[n].write("plan.txt", f"version from {n}")
        for n in order:
            await devs[n].sync()
        for n in order:  # a second pass spreads what the first one merged
            await devs[n].sync()
        trees = [tree_of(devs[n].root) for n in "abc"]
        assert trees[0] == trees[1] == trees[2]
        contents = sorted(v[1] for v in trees[0].values())
        assert contents == [b"version from a", b"version from b", b"version from c"]
        assert trees[0]["plan.txt"][1] == f"version from {order[0]}".encode()
        copies = [p for p in trees[0] if "conflicted copy" in p]
        assert len(copies) == 2
        # a further round changes nothing anywhere
        for n in "abc":
            assert not (await devs[n].sync()).changed
    finally:
        for d in devs.values():
            d.close()


async def test_rename_of_a_big_directory_costs_no_content_either_way(tmp_path, folder_keys):
    store = MemoryChunkStore()
    a = Device("a", tmp_path / "a", store, folder_keys)
    b = Device("b", tmp_path / "b", store, folder_keys)
    try:
        for i in range(1000):
            a.write(f"photos/img{i:04}.jpg", os.urandom(4096))
        await a.sync()
        await b.sync()
        before = _server_bytes(store)
        os.rename(a.root / "photos", a.root / "pictures")
        result = await a.sync()
        added = _server_bytes(store) - before
        assert added < 256 * 1024, added
        assert result.pushed
        # the other device rebuilds the moved files from its own copies: no content download
        pulled = await b.sync()
        assert pulled.applied == 1000
        assert pulled.downloaded_bytes < 256 * 1024, pulled.downloaded_bytes
        assert tree_of(a.root) == tree_of(b.root)
        assert not any((b.root / ".chunksync" / "tmp").iterdir())
    finally:
        a.close()
        b.close()


async def test_one_byte_edit_in_a_big_file_uploads_only_nearby_chunks(tmp_path, folder_keys):
    store = MemoryChunkStore()
    a = Device("a", tmp_path / "a", store, folder_keys)
    b = Device("b", tmp_path / "b", store, folder_keys)
    try:
        data = bytearray(os.urandom(64 << 20))
        a.write("big.bin", bytes(data))
        await a.sync()
        await b.sync()
        before = _server_bytes(store)
        data[len(data) // 2] ^= 0xFF
        a.write("big.bin", bytes(data))
        await a.sync()
        added = _server_bytes(store) - before
        assert added < 6 << 20, added
        result = await b.sync()
        assert b.read("big.bin") == bytes(data)
        assert result.downloaded_bytes < 6 << 20, result.downloaded_bytes
    finally:
        a.close()
        b.close()
