"""Test helpers for the server's object stores: deterministic items, and damage done
behind a store's back (a flipped bit in the memory dict or in a pack file)."""

from __future__ import annotations

import random
import sqlite3

from chunksync_server.storage import MemoryObjectStore, ObjectStore, PackObjectStore
from chunksync_server.storage.packindex import INDEX_FILE
from chunksync_server.storage.s3 import S3ObjectStore

__all__ = ["Items", "damage", "make_items"]

Items = list[tuple[bytes, bytes]]


def make_items(count: int, seed: int, max_size: int = 2048) -> Items:
    """Deterministic (id, blob) pairs with random-looking ids and sizes 0..max_size."""
    rng = random.Random(seed)
    return [(rng.randbytes(32), rng.randbytes(rng.randint(0, max_size))) for _ in range(count)]


def damage(store: ObjectStore, ns: str, oid: bytes) -> None:
    """Flip one bit of a stored blob behind the store's back (bit rot, a bad disk)."""
    if isinstance(store, S3ObjectStore):
        good = store.get(ns, oid)
        store.corrupt(ns, oid, bytes([good[0] ^ 1]) + good[1:])
        return
    if isinstance(store, MemoryObjectStore):
        good = store.get(ns, oid)
        store.corrupt(ns, oid, bytes([good[0] ^ 1]) + good[1:])
        return
    assert isinstance(store, PackObjectStore)
    with sqlite3.connect(store.root / INDEX_FILE) as db:
        pack, offset = db.execute(
            "SELECT pack, offset FROM objects WHERE ns = ? AND oid = ?", (ns, oid)
        ).fetchone()
    db.close()
    with open(store.root / ns / "packs" / f"{pack}.pack", "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))
