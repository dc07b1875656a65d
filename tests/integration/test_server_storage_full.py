"""A full (or failing) server disk is an answer, not a crash.

The server's data dir sits on a tiny tmpfs; an upload that does not fit is answered
``507 {"error": "server storage is full", "code": "storage_full"}`` with one log line
and no traceback, the client raises ServerStorageFull after ONE request (no quick
retries), the failed append is rolled back, and a small upload still fits afterwards.
Other write errors (EIO, injected) are a 507 ``storage_failed``, quota stays distinct.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chunksync import wire
from chunksync.errors import QuotaExceeded, ServerStorageFull
from chunksync.objects import ObjectId
from chunksync.transport import HttpClient, RetryPolicy
from chunksync.transport.base import status_error
from chunksync_server import admin
from chunksync_server.handlers.common import DB, METRICS
from chunksync_server.storage import packio
from tests.helpers.server import RunningServer, serve_in_process

F = "f"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def blobs(count: int, size: int) -> list[tuple[ObjectId, bytes]]:
    return [(ObjectId(os.urandom(32)), os.urandom(size)) for _ in range(count)]


def counting_policy(waits: list[float]) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    return RetryPolicy(attempts=12, base_delay=0.01, max_delay=0.02, sleep=sleep)


def requests_with(srv: RunningServer, status: str) -> float:
    """How many requests the server answered with ``status``, from its own metrics."""
    total = 0.0
    for metric in srv.app[METRICS].registry.collect():
        for sample in metric.samples:
            if sample.name == "chunksync_requests_total" and sample.labels["status"] == status:
                total += sample.value
    return total


async def make_folder(srv: RunningServer) -> None:
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        async with s.post(srv.url(wire.FOLDERS), json={"name": F}) as r:
            assert r.status == 201


async def test_full_server_disk_answers_507_storage_full_not_500(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with serve_in_process(tiny_disk / "srv") as srv:
        await make_folder(srv)
        waits: list[float] = []
        client = HttpClient(srv.base_url, srv.token, retry=counting_policy(waits))
        try:
            store = client.folder(F)
            kept = blobs(4, 10_000)
            await store.put_many(kept)
            with pytest.raises(ServerStorageFull, match="server storage is full") as err:
                await store.put_many(blobs(40, 100_000))  # 4 MB into a 2 MB disk
            assert "\n" not in str(err.value) and "Internal Server Error" not in str(err.value)
            assert waits == []  # not retried at once
            assert requests_with(srv, "507") == 1
            assert requests_with(srv, "500") == 0
            small = blobs(2, 1000)  # the failed append was rolled back
            await store.put_many(small)
            assert await store.missing([oid for oid, _ in kept + small]) == set()
        finally:
            await client.aclose()
    messages = [r.getMessage() for r in caplog.records]
    assert not any(r.exc_info for r in caplog.records), messages
    full = [m for m in messages if "object store write failed" in m]
    assert len(full) == 1 and "\n" not in full[0], messages
    assert admin.check(tiny_disk / "srv") == []


async def test_other_write_errors_answer_507_storage_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_disk(fd: int, blobs: Any, offset: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    async with serve_in_process(tmp_path / "srv") as srv:
        await make_folder(srv)
        monkeypatch.setattr(packio, "write_all", broken_disk)
        blob = os.urandom(100)
        async with aiohttp.ClientSession(headers=srv.headers()) as s:
            url = srv.url(wire.OBJECT, folder=F, oid="cd" * 32)
            headers = {wire.DIGEST_HEADER: wire.blob_digest(blob).hex()}
            async with s.put(url, data=blob, headers=headers) as r:
                assert r.status == wire.QUOTA_STATUS, await r.text()
                doc = await r.json()
        assert doc["code"] == "storage_failed" and "Input/output error" in doc["error"]
        assert requests_with(srv, "500") == 0


async def test_metadata_write_failure_answers_507_not_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve_in_process(tmp_path / "srv") as srv:
        await make_folder(srv)

        async def full(self: Any, fn: Any) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(type(srv.app[DB]), "write", full)
        async with aiohttp.ClientSession(headers=srv.headers()) as s:
            async with s.post(srv.url(wire.FOLDERS), json={"name": "g"}) as r:
                assert r.status == wire.QUOTA_STATUS, await r.text()
                assert (await r.json())["code"] == "storage_failed"
        assert requests_with(srv, "500") == 0


def test_client_tells_full_server_disk_from_quota() -> None:
    full = status_error(
        507,
        "Insufficient Storage",
        b'{"error": "server storage is full", "code": "storage_full"}',
        "upload",
    )
    quota = status_error(
        507,
        "Insufficient Storage",
        b'{"error": "storage quota exceeded: alice", "code": "quota_exceeded"}',
        "upload",
    )
    legacy_quota = status_error(507, "", b'{"error": "storage quota exceeded"}', "upload")
    assert isinstance(full, ServerStorageFull) and not full.retryable
    assert str(full) == "upload: server storage is full (HTTP 507)"
    assert isinstance(quota, QuotaExceeded) and isinstance(legacy_quota, QuotaExceeded)
