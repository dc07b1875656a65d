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
