"""Sealer: parallel sealing, dedup, backpressure, error propagation, scan integration."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import open_blob
from chunksync.objects import FileManifest, ObjectId, ObjectKind, decode_object
from chunksync.pipeline import Sealer
from chunksync.scanner import scan
from chunksync.storage.index import Index
from tests.helpers.corpus import random_bytes, write_tree


class Collect:
    def __init__(self) -> None:
        self.batches: list[list[tuple[ObjectId, bytes]]] = []

    def __call__(self, batch: list[tuple[ObjectId, bytes]]) -> None:
        self.batches.append(batch)

    @property
    def blobs(self) -> dict[ObjectId, bytes]:
        return {oid: blob for batch in self.batches for oid, blob in batch}


def _identity_seal(
    _keys: FolderKeys, _kind: ObjectKind, _oid: ObjectId, data: bytes, *, level: int = 3
) -> bytes:
    return bytes(data)


def test_seals_with_real_seal_and_opens_again(folder_keys: FolderKeys) -> None:
    sink = Collect()
    plain = {}
    with Sealer(folder_keys, sink, batch_objects=3) as sealer:
        for i in range(10):
            data = random_bytes(1000 + i, i)
            oid = folder_keys.chunk_id(data)
            plain[oid] = data
            assert sealer.submit(oid, memoryview(data))
    assert set(sink.blobs) == set(plain)
    for oid, blob in sink.blobs.items():
        assert open_blob(folder_keys, ObjectKind.CHUNK, oid, blob) == plain[oid]
    assert all(len(b) <= 3 for b in sink.batches) and len(sink.batches) >= 4
    assert sealer.stats.sealed == 10 and sealer.stats.batches == len(sink.batches)


def test_duplicates_and_skipped_ids_are_dropped(folder_keys: FolderKeys) -> None:
    sink = Collect()
    known = folder_keys.chunk_id(b"known")
    with Sealer(folder_keys, sink, skip=lambda oid: oid == known) as sealer:
        a = folder_keys.chunk_id(b"a")
        assert sealer.submit(a, b"a")
        assert not sealer.submit(a, b"a")
        assert not sealer.submit(known, b"known")
    assert list(sink.blobs) == [a]
    assert sealer.stats.skipped == 1 and sealer.stats.submitted == 1


def test_backpressure_bounds_bytes_in_flight(folder_keys: FolderKeys) -> None:
    release = threading.Event()
    first_call = threading.Event()
    sink = Collect()

    def slow_sink(batch: list[tuple[ObjectId, bytes]]) -> None:
        first_call.set()
        release.wait()
        sink(batch)

    cap = 4096
    peak = [0]
    sealer: Sealer

    def watching_seal(*args: object, **kw: object) -> bytes:
        peak[0] = max(peak[0], sealer._in_flight)
        return _identity_seal(*args, **kw)  # type: ignore[arg-type]

    sealer = Sealer(folder_keys, slow_sink, seal=watching_seal, max_in_flight=cap, batch_objects=1)
    submitted: list[int] = []

    def produce() -> None:
        for i in range(20):
            data = bytes([i]) * 1024
            sealer.submit(folder_keys.chunk_id(data), data)
            submitted.append(i)

    producer = threading.Thread(target=produce)
    producer.start()
    assert first_call.wait(10)
    producer.join(timeout=0.3)
    assert producer.is_alive(), "producer should block while the sink is stuck"
    assert len(submitted) <= cap // 1024
    release.set()
    producer.join(10)
    sealer.close()
    assert len(sink.blobs) == 20
    assert peak[0] <= cap


def test_sink_error_surfaces(folder_keys: FolderKeys) -> None:
    def broken(_batch: list[tuple[ObjectId, bytes]]) -> None:
        raise OSError("upload failed")

    sealer = Sealer(folder_keys, broken, seal=_identity_seal, batch_objects=1)
    sealer.submit(folder_keys.chunk_id(b"x"), b"x")
    with pytest.raises(OSError, match="upload failed"):
        sealer.close()


def test_seal_error_surfaces(folder_keys: FolderKeys) -> None:
    sealer = Sealer(folder_keys, Collect())
    sealer.submit(ObjectId(bytes(32)), b"not matching its id")
    with pytest.raises(Exception, match="does not match"):
        sealer.close()


def test_scan_feeds_sealer(tmp_path: Path, folder_keys: FolderKeys) -> None:
    root = tmp_path / "f"
    write_tree(root, {"a.bin": random_bytes(3 << 20, 1), "b.txt": "b", "c.txt": "b"})
    sink = Collect()
    with Index.open(tmp_path / "idx") as index:
        with Sealer(folder_keys, sink) as sealer:
            result = scan(root, folder_keys, index, on_chunk=sealer)
        entry = result.entries["a.bin"]
        assert entry.id is not None
        found = index.get_object(entry.id)
        assert found is not None
        manifest = decode_object(ObjectKind.FILE, found[1])
    assert isinstance(manifest, FileManifest)
    assert sealer.stats.submitted == len(sink.blobs) == len(manifest.chunks) + 1  # b, c dedup
    blobs = sink.blobs
    rebuilt = b"".join(
        open_blob(folder_keys, ObjectKind.CHUNK, c.id, blobs[c.id]) for c in manifest.chunks
    )
    assert rebuilt == (root / "a.bin").read_bytes()


@pytest.mark.timeout(30)
def test_compressible_data_never_deadlocks_the_budget(folder_keys: FolderKeys) -> None:
    """Budget is counted in plaintext, batches fill in sealed bytes: when compressible
    chunks exhaust the budget before a batch is full, the batch must still go out."""
    batches: list[int] = []
    sealer = Sealer(
        folder_keys,
        lambda batch: batches.append(len(batch)),
        max_in_flight=1 << 20,
        batch_bytes=8 << 20,
        batch_objects=1000,
    )
    with sealer:
        for i in range(64):
            data = bytes([i]) * (256 << 10)  # compresses to almost nothing
            sealer.submit(folder_keys.chunk_id(data), data)
    assert sum(batches) == 64
