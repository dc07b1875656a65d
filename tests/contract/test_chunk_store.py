"""One contract for every ChunkStore (restic's backend suite): memory and HTTP.

``ChunkStoreContract`` holds the tests; each subclass only provides a ``store``
fixture. Anything the sync engine relies on belongs here, so that an engine tested
against :class:`MemoryChunkStore` behaves the same against a real server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.errors import AuthError, NetworkError, ObjectNotFound, RefConflict
from chunksync.objects import ObjectId
from chunksync.transport import ChunkStore, HttpClient, MemoryChunkStore
from tests.helpers.server import serve_in_process


def blob_of(keys: FolderKeys, size: int = 100) -> tuple[ObjectId, bytes]:
    data = os.urandom(size)
    return keys.chunk_id(data), data


class ChunkStoreContract:
    """Subclasses provide an async ``store`` fixture yielding a fresh, empty folder."""

    async def test_is_a_chunk_store(self, store: ChunkStore) -> None:
        assert isinstance(store, ChunkStore)

    async def test_put_get_missing(self, store: ChunkStore, folder_keys: FolderKeys) -> None:
        items = [blob_of(folder_keys, n) for n in (0, 1, 1000, 70_000)]
        absent, _ = blob_of(folder_keys)
        ids = [oid for oid, _ in items]
        assert await store.missing(ids + [absent]) == set(ids) | {absent}
        await store.put_many(items)
        assert await store.missing(ids + [absent]) == {absent}
        assert await store.get_many(ids) == dict(items)

    async def test_empty_calls(self, store: ChunkStore) -> None:
        await store.put_many([])
        assert await store.missing([]) == set()
        assert await store.get_many([]) == {}

    async def test_put_is_idempotent(self, store: ChunkStore, folder_keys: FolderKeys) -> None:
        items = [blob_of(folder_keys) for _ in range(5)]
        await store.put_many(items)
        await store.put_many(items + items[:2])  # again, with duplicates inside one call
        assert await store.get_many([oid for oid, _ in items]) == dict(items)

    async def test_duplicate_ids_in_queries(
        self, store: ChunkStore, folder_keys: FolderKeys
    ) -> None:
        oid, blob = blob_of(folder_keys)
        await store.put_many([(oid, blob)])
        assert await store.missing([oid, oid]) == set()
        assert await store.get_many([oid, oid]) == {oid: blob}

    async def test_missing_object_names_the_id(
        self, store: ChunkStore, folder_keys: FolderKeys
    ) -> None:
        present = blob_of(folder_keys)
        absent, _ = blob_of(folder_keys)
        await store.put_many([present])
        with pytest.raises(ObjectNotFound, match=absent.hex()):
            await store.get_many([present[0], absent])

    async def test_new_folder_has_no_head(self, store: ChunkStore) -> None:
        state = await store.get_head()
        assert (state.head, state.seq) == (None, 0)
        assert await store.head_log() == []

    async def test_cas_moves_head(self, store: ChunkStore, folder_keys: FolderKeys) -> None:
        c1, c2 = blob_of(folder_keys), blob_of(folder_keys)
        await store.put_many([c1, c2])
        first = await store.cas_head(None, c1[0].hex())
        assert (first.head, first.seq) == (c1[0].hex(), 1)
        second = await store.cas_head(c1[0].hex(), c2[0].hex())
        assert (second.head, second.seq) == (c2[0].hex(), 2)
        now = await store.get_head()
        assert (now.head, now.seq) == (second.head, second.seq)
        assert now.epoch is not None and (await store.get_head()).epoch == now.epoch  # stable

    async def test_repeated_cas_succeeds(self, store: ChunkStore, folder_keys: FolderKeys) -> None:
        c1 = blob_of(folder_keys)
        await store.put_many([c1])
        first = await store.cas_head(None, c1[0].hex())
        assert await store.cas_head(None, c1[0].hex()) == first  # a lost answer, repeated
        assert len(await store.head_log()) == 1

    async def test_cas_with_stale_base_conflicts(
        self, store: ChunkStore, folder_keys: FolderKeys
    ) -> None:
        c1, c2 = blob_of(folder_keys), blob_of(folder_keys)
        await store.put_many([c1, c2])
        await store.cas_head(None, c1[0].hex())
        with pytest.raises(RefConflict) as info:
            await store.cas_head(None, c2[0].hex())
        assert (info.value.current, info.value.seq) == (c1[0].hex(), 1)

    async def test_cas_race_has_exactly_one_winner(
        self, store: ChunkStore, folder_keys: FolderKeys
    ) -> None:
        base = blob_of(folder_keys)
        rivals = [blob_of(folder_keys) for _ in range(10)]
        await store.put_many([base, *rivals])
        await store.cas_head(None, base[0].hex())
        results = await asyncio.gather(
            *(store.cas_head(base[0].hex(), oid.hex()) for oid, _ in rivals),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1 and winners[0].seq == 2
        assert len(losers) == 9 and all(isinstance(e, RefConflict) for e in losers)
        assert (await store.get_head()).head == winners[0].head
        assert all(e.current == winners[0].head for e in losers)  # type: ignore[union-attr]

    async def test_head_log_is_a_chain(self, store: ChunkStore, folder_keys: FolderKeys) -> None:
        commits = [blob_of(folder_keys) for _ in range(4)]
        await store.put_many(commits)
        previous: str | None = None
        for oid, _ in commits:
            await store.cas_head(previous, oid.hex())
            previous = oid.hex()
        log = await store.head_log()
        assert [e.seq for e in log] == [1, 2, 3, 4]
        assert [e.head for e in log] == [oid.hex() for oid, _ in commits]
        assert [e.previous for e in log] == [None] + [oid.hex() for oid, _ in commits[:-1]]
        assert all(e.time > 0 and e.device and e.user for e in log)
        assert [e.seq for e in await store.head_log(after=2)] == [3, 4]
        assert [e.seq for e in await store.head_log(after=1, limit=2)] == [2, 3]

    async def test_keyslots_round_trip(self, store: ChunkStore) -> None:
        assert await store.get_keyslots() == {}
        await store.put_keyslot("default", b"\x00wrapped key\xff" * 10)
        await store.put_keyslot("laptop-2", b"other")
        await store.put_keyslot("laptop-2", b"replaced")
        assert await store.get_keyslots() == {
            "default": b"\x00wrapped key\xff" * 10,
            "laptop-2": b"replaced",
        }

    async def test_watch_delivers_head_change(
        self, store: ChunkStore, folder_keys: FolderKeys
    ) -> None:
        commit = blob_of(folder_keys)
        await store.put_many([commit])
        events = store.watch()
        try:
            async with asyncio.timeout(10):
                current = await anext(events)
                assert (current.head, current.seq) == (None, 0)
                await store.cas_head(None, commit[0].hex())
                moved = await anext(events)
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        assert (moved.head, moved.seq) == (commit[0].hex(), 1)


class TestMemoryChunkStore(ChunkStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[ChunkStore]:
        s = MemoryChunkStore()
        yield s
        await s.aclose()

    # memory-only: the fault hooks engine tests use
    async def test_fail_next_injects_retryable_errors(self, folder_keys: FolderKeys) -> None:
        store = MemoryChunkStore()
        item = blob_of(folder_keys)
        store.fail_next(2, methods={"put_many"})
        for _ in range(2):
            with pytest.raises(NetworkError) as info:
                await store.put_many([item])
            assert info.value.retryable
        assert await store.missing([item[0]]) == {item[0]}  # other methods unaffected
        await store.put_many([item])
        assert store.peek(item[0]) == item[1]
        assert store.calls["put_many"] == 3

    async def test_fail_next_with_custom_error(self) -> None:
        store = MemoryChunkStore()
        store.fail_next(error=lambda: AuthError("revoked"))
        with pytest.raises(AuthError, match="revoked"):
            await store.get_head()
        assert (await store.get_head()).seq == 0

    async def test_closed_store_ends_watch(self) -> None:
        store = MemoryChunkStore()
        events = store.watch()
        assert (await anext(events)).seq == 0
        waiting = asyncio.ensure_future(anext(events))
        await store.aclose()
        with pytest.raises(StopAsyncIteration):
            await waiting


@pytest.mark.integration
class TestHttpChunkStore(ChunkStoreContract):
    """Against the real server (SQLite metadata, disk object store) on 127.0.0.1."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[ChunkStore]:
        async with serve_in_process(tmp_path / "server") as srv:
            client = HttpClient(srv.base_url, srv.token)
            await client.create_folder("contract")
            s = client.folder("contract")
            try:
                yield s
            finally:
                await s.aclose()
                await client.aclose()
