"""A seeded simulation in the style of Dropbox's CanopyCheck: several devices run the
real engine against one in-memory server, with random edits, renames, deletions,
conflicting changes and injected network failures, and invariants checked throughout:

* **no version lost**: every file content a device held when one of its syncs began
  is, once that sync succeeds, in the server's history (some snapshot's tree);
* **nothing invented**: a device's disk only ever holds contents someone wrote;
* **convergence**: after the faults stop and every device syncs twice, all devices hold
  the same tree, and another round changes nothing.

Each seed is one reproducible run; a failure names its seed.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chunksync.crypto.seal import open_blob
from chunksync.errors import ChunksyncError, HeldError, NetworkError
from chunksync.objects import Commit, FileManifest, ObjectKind, Tree, decode_object, id_from_hex
from chunksync.transport.memory import MemoryChunkStore
from chunksync.treediff import walk_tree
from tests.helpers.devices import Device, tree_of

NAMES = ["a.txt", "b.txt", "notes/c.md", "notes/d.md", "deep/x/y.bin", "e"]
STEPS = 60


def _contents(root: Path) -> dict[str, bytes]:
    return {p: d[1] for p, d in tree_of(root).items() if d[0] == "file"}


def _history_contents(store: MemoryChunkStore, keys) -> set[bytes]:
    """Every file content reachable from any snapshot on the server, decrypted."""

    def obj(kind: ObjectKind, oid: bytes) -> bytes:
        return open_blob(keys, kind, oid, store.peek(oid))

    def tree(oid: bytes) -> Tree:
        t = decode_object(ObjectKind.TREE, obj(ObjectKind.TREE, oid))
        assert isinstance(t, Tree)
        return t

    seen: set[bytes] = set()
    out: set[bytes] = set()
    frontier = [id_from_hex(e.head) for e in store._log]
    while frontier:
        cid = frontier.pop()
        if cid in seen:
            continue
        seen.add(cid)
        commit = decode_object(ObjectKind.COMMIT, obj(ObjectKind.COMMIT, cid))
        assert isinstance(commit, Commit)
        frontier.extend(commit.parents)
        for _, entry in walk_tree(commit.tree, tree):
            if entry.kind == "file" and entry.id is not None:
                manifest = decode_object(ObjectKind.FILE, obj(ObjectKind.FILE, entry.id))
                assert isinstance(manifest, FileManifest)
                out.add(b"".join(obj(ObjectKind.CHUNK, c.id) for c in manifest.chunks))
    return out


def _edit(rng: random.Random, device: Device, written: set[bytes], counter: list[int]) -> None:
    files = sorted(_contents(device.root))
    op = rng.choice(["write", "write", "write", "delete", "rename", "mkdir"])
    if op == "write" or not files:
        counter[0] += 1
        data = f"{device.name} version {counter[0]}\n".encode() * rng.randint(1, 50)
        name = rng.choice(NAMES + files)
        if (device.root / name).is_dir():
            return
        written.add(data)
        device.write(name, data)
    elif op == "delete":
        (device.root / rng.choice(files)).unlink()
    elif op == "rename":
        src = rng.choice(files)
        dst = f"moved/{src.replace('/', '_')}-{counter[0]}"
        (device.root / dst).parent.mkdir(parents=True, exist_ok=True)
        (device.root / src).rename(device.root / dst)
    else:
        (device.root / f"dir{rng.randint(0, 3)}").mkdir(exist_ok=True)


@pytest.mark.parametrize("seed", range(20))
async def test_seeded_simulation(tmp_path: Path, folder_keys, seed: int) -> None:
    rng = random.Random(seed)
    store = MemoryChunkStore()
    devices = [Device(n, tmp_path / n, store, folder_keys) for n in ("p", "q", "r")]
    written: set[bytes] = set()
    counter = [0]
    try:
        for _step in range(STEPS):
            device = rng.choice(devices)
            if rng.random() < 0.55:
                _edit(rng, device, written, counter)
                continue
            if rng.random() < 0.25:
                store.fail_next(
                    1,
                    methods={
                        rng.choice(["get_head", "put_many", "get_many", "cas_head", "missing"])
                    },
                )
            before = set(_contents(device.root).values())
            try:
                await device.sync(allow_mass_delete=True)
            except NetworkError:
                store._faults.clear()
                continue
            lost = before - _history_contents(store, folder_keys)
            assert not lost, f"seed {seed}: contents lost after a sync of {device.name}"
            assert set(_contents(device.root).values()) <= written, f"seed {seed}: invented content"
        store._faults.clear()
        for _ in range(2):
            for device in devices:
                await device.sync(allow_mass_delete=True)
        trees = [tree_of(d.root, mtimes=False) for d in devices]
        assert trees[0] == trees[1] == trees[2], f"seed {seed}: devices did not converge"
        for device in devices:
            assert not (await device.sync()).changed, f"seed {seed}: sync not idempotent"
    except (ChunksyncError, HeldError) as exc:
        raise AssertionError(f"seed {seed}: {exc}") from exc
    finally:
        for device in devices:
            device.close()
