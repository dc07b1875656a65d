"""An initial sync holds a bounded number of upload batches, however large the folder:
a finished upload's batch (its sealed blobs) is let go at once, not when the scan ends."""

from __future__ import annotations

import asyncio
import gc
import os
import weakref

from chunksync.sync import engine


async def test_finished_upload_batches_are_released_during_the_scan(memory_pair, monkeypatch):
    a, _, _ = memory_pair
    for i in range(40):
        a.write(f"d{i % 4}/f{i}.bin", os.urandom(64 << 10))
    monkeypatch.setattr(engine, "UPLOAD_BATCH_BYTES", 64 << 10)  # one batch per file
    real = asyncio.run_coroutine_threadsafe
    alive: list[weakref.ref] = []
    most = 0

    def tracking(coro, loop):
        nonlocal most
        future = real(coro, loop)
        alive.append(weakref.ref(future))
        gc.collect()
        most = max(most, sum(1 for ref in alive if ref() is not None))
        return future

    monkeypatch.setattr(engine.asyncio, "run_coroutine_threadsafe", tracking)
    result = await a.sync()
    monkeypatch.undo()
    assert result.uploaded_objects >= 40
    assert len(alive) >= 20  # many batches went up while scanning
    assert most <= engine.UPLOADS_IN_FLIGHT + 2, most


async def test_blob_memory_of_an_initial_sync_stays_within_the_pipeline_budget(
    memory_pair, monkeypatch
):
    """A slow server makes the scanner wait instead of the client holding the folder's
    sealed content: memory other than what the server already stored stays within the
    sealer's budget plus the batches in flight, for a tree four times that size."""
    import tracemalloc

    a, _, store = memory_pair
    for i in range(16):
        a.write(f"d{i % 4}/f{i}.bin", os.urandom(1 << 20))  # 16 MiB, incompressible
    monkeypatch.setattr(engine, "SEAL_IN_FLIGHT_BYTES", 1 << 20)
    monkeypatch.setattr(engine, "UPLOAD_BATCH_BYTES", 256 << 10)
    monkeypatch.setattr(engine, "UPLOADS_IN_FLIGHT", 2)
    real_put = type(store).put_many
    stored = 0
    most = 0

    async def slow_put(self, items):
        nonlocal stored, most
        most = max(most, tracemalloc.get_traced_memory()[0] - stored)
        await asyncio.sleep(0.02)  # a slow server: backpressure, not a timing assertion
        await real_put(self, items)
        stored += sum(len(blob) for _, blob in items)

    monkeypatch.setattr(type(store), "put_many", slow_put)
    tracemalloc.start()
    try:
        result = await a.sync()
    finally:
        tracemalloc.stop()
    assert result.uploaded_objects >= 16
    # sealer budget + the batches travelling (1.75 MiB) + the files being read, chunked and
    # sealed (~5 MiB measured): far below the tree; unbounded it was the tree (16.7 MiB)
    assert most < 10 << 20, most >> 10
