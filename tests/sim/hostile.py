"""A lying server: a ChunkStore view over the honest store, for one sync of one device.

The server holds no keys, so it cannot make a commit; what it can do is choose which of
the authentic objects it shows, when, and to whom, and damage blobs:

* ``rollback``: show the device an older head from the log, with its old sequence number;
* ``replay``: show an older head again, but claim the current log position;
* ``lie_cas``: take the device's push, answer "done", but never move the head: the
  device's snapshot lives on a branch only it (and the liar) knows — the fork;
* ``fork``: show the device a head on such a forked branch (made by a lie to another
  device), which does not descend from what this device accepted;
* ``foreign``: show a head that is a commit of another folder (another key);
* ``corrupt``: flip one byte of one blob served by ``get_many``;
* ``swap``: serve another object's (authentic) blob under a requested id.

The device's link records which head it was shown (``FaultyLink.heads_shown``), so the
invariants can decide, from the commit graph alone, whether the device had to refuse.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import seal
from chunksync.objects import Commit, ObjectId, ObjectKind
from chunksync.transport.memory import MemoryChunkStore
from chunksync.wire import HeadLogEntry, HeadState

MODES = ("rollback", "replay", "lie_cas", "fork", "foreign", "corrupt", "swap")


def foreign_commit(other: FolderKeys) -> tuple[ObjectId, bytes]:
    """A valid commit of another folder, sealed under that folder's key."""
    tree = other.meta_id(b"")  # never fetched: decryption of the commit fails first
    commit = Commit(
        tree=tree,
        parents=(),
        seq=1_000,
        device="elsewhere",
        author="x",
        time_ns=0,
        summary={},
        message="",
    )
    encoded = commit.encode()
    oid = other.meta_id(encoded)
    return oid, seal(other, ObjectKind.COMMIT, oid, encoded)


class HostileView:
    """The server as one device sees it during one sync."""

    def __init__(
        self,
        store: MemoryChunkStore,
        mode: str,
        rng: random.Random,
        *,
        accepted_server_seq: int,
        lies: list[str],
        foreign: tuple[ObjectId, bytes],
    ) -> None:
        self.store = store
        self.mode = mode
        self.lied: str | None = None  # the head this view pretends to hold after a lie
        self.overlay: dict[ObjectId, bytes] = {}
        self.fake: HeadState | None = None
        log = store._log
        if mode in ("rollback", "replay"):
            older = [e for e in log if e.seq < max(accepted_server_seq, 1)]
            if older:
                entry = rng.choice(older)
                seq = entry.seq if mode == "rollback" else store._head.seq
                self.fake = HeadState(entry.head, seq, store.epoch)
        elif mode == "fork" and lies:
            self.fake = HeadState(rng.choice(lies), store._head.seq + 1, store.epoch)
        elif mode == "foreign":
            oid, blob = foreign
            self.overlay[oid] = blob
            self.fake = HeadState(oid.hex(), store._head.seq + 1, store.epoch)
        self._rng = rng

    # --- the ChunkStore protocol -------------------------------------------------------
    async def get_head(self) -> HeadState:
        real = await self.store.get_head()
        state = self.fake or (HeadState(self.lied, real.seq + 1, real.epoch) if self.lied else real)
        return state

    async def cas_head(self, expected: str | None, new: str) -> HeadState:
        if self.mode != "lie_cas":
            return await self.store.cas_head(expected, new)
        real = await self.store.get_head()
        if expected != (self.lied or real.head):
            return await self.store.cas_head(expected, new)  # let it fail as it would
        self.lied = new
        return HeadState(new, real.seq + 1, real.epoch)

    async def head_log(self, after: int = 0, limit: int = 1000) -> list[HeadLogEntry]:
        entries = await self.store.head_log(after, limit)
        if self.fake is not None:
            entries = [e for e in entries if e.seq <= self.fake.seq and e.head != self.fake.head]
        return entries

    async def get_many(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        mine = {oid: self.overlay[oid] for oid in ids if oid in self.overlay}
        rest = [oid for oid in ids if oid not in self.overlay]
        got = dict(await self.store.get_many(rest)) if rest else {}
        got.update(mine)
        if got and self.mode in ("corrupt", "swap"):
            victim = min(got)
            blob = bytearray(got[victim])
            if self.mode == "corrupt":
                blob[len(blob) // 2] ^= 0x40
            else:
                others = sorted(oid for oid in self.store._blobs if oid != victim)
                if others:
                    blob = bytearray(self.store._blobs[self._rng.choice(others)])
            got[victim] = bytes(blob)
        return got

    async def missing(self, ids: Sequence[ObjectId]) -> set[ObjectId]:
        return await self.store.missing(ids)

    async def put_many(self, items: Sequence[tuple[ObjectId, bytes]]) -> None:
        await self.store.put_many(items)

    async def get_keyslots(self) -> dict[str, bytes]:
        return await self.store.get_keyslots()

    async def role(self) -> str:
        return await self.store.role()

    async def put_keyslot(self, name: str, blob: bytes) -> None:
        await self.store.put_keyslot(name, blob)

    def watch(self) -> AsyncIterator[HeadState]:
        return self.store.watch()

    async def aclose(self) -> None:
        return None
