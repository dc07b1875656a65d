"""Blob sealing: round trips, determinism, padding, and every way a blob can be wrong."""

from __future__ import annotations

import os
import random
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import (
    FLAG_ZSTD,
    HEADER_SIZE,
    MAX_PLAINTEXT,
    BlobHeader,
    open_blob,
    padme,
    parse_header,
    seal,
    sealed_size_bound,
)
from chunksync.errors import IntegrityError
from chunksync.objects import ObjectId, ObjectKind, short_id

CHUNK = ObjectKind.CHUNK
TREE = ObjectKind.TREE


def randbytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


TEXT = b"the quick brown fox jumps over the lazy dog. " * 200


def _sealed(keys: FolderKeys, data: bytes, kind: ObjectKind = CHUNK, **kw: int) -> tuple:
    oid = keys.object_id(kind, data)
    return oid, seal(keys, kind, oid, data, **kw)


def _auth_failure(oid: ObjectId) -> str:
    return f"object {short_id(oid)}: authentication failed"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # folder_keys is immutable, so sharing it between examples is harmless
@given(
    size=st.one_of(st.integers(0, 300), st.integers(0, 2 * 1024 * 1024)),
    compressible=st.booleans(),
)
@example(size=2 * 1024 * 1024, compressible=False)
@example(size=2 * 1024 * 1024, compressible=True)
def test_round_trip_random_sizes(folder_keys: FolderKeys, size: int, compressible: bool) -> None:
    data = (TEXT * (size // len(TEXT) + 1))[:size] if compressible else randbytes(size)
    oid, blob = _sealed(folder_keys, data)
    assert open_blob(folder_keys, CHUNK, oid, blob) == data
    assert open_blob(folder_keys, CHUNK, oid, memoryview(blob)) == data


@pytest.mark.parametrize("kind", [ObjectKind.FILE, ObjectKind.TREE, ObjectKind.COMMIT])
def test_metadata_kinds_round_trip(folder_keys: FolderKeys, kind: ObjectKind) -> None:
    data = b'{"t":"tree","e":[]}' * 10
    oid, blob = _sealed(folder_keys, data, kind)
    assert open_blob(folder_keys, kind, oid, blob) == data
    assert parse_header(blob).kind == kind


def test_sealing_is_deterministic_and_key_dependent(
    folder_keys: FolderKeys, other_folder_keys: FolderKeys
) -> None:
    oid, blob = _sealed(folder_keys, TEXT)
    assert seal(folder_keys, CHUNK, oid, memoryview(TEXT)) == blob
    other_oid, other_blob = _sealed(other_folder_keys, TEXT)
    assert other_blob[HEADER_SIZE:] != blob[HEADER_SIZE:]
    with pytest.raises(IntegrityError, match=_auth_failure(oid)):
        open_blob(other_folder_keys, CHUNK, oid, blob)


def test_nonce_depends_on_the_exact_aead_plaintext(folder_keys: FolderKeys) -> None:
    """Two compressions of one object (other zstd level) must not share a GCM nonce."""
    data = TEXT * 20
    oid = folder_keys.chunk_id(data)
    fast, strong = (
        seal(folder_keys, CHUNK, oid, data, level=1),
        seal(folder_keys, CHUNK, oid, data, level=19),
    )
    assert fast[HEADER_SIZE : HEADER_SIZE + 24] != strong[HEADER_SIZE : HEADER_SIZE + 24]
    assert open_blob(folder_keys, CHUNK, oid, fast) == open_blob(folder_keys, CHUNK, oid, strong)


def test_compression_only_when_it_pays(folder_keys: FolderKeys) -> None:
    _, packed = _sealed(folder_keys, TEXT)
    assert parse_header(packed).flags == FLAG_ZSTD
    assert len(packed) < len(TEXT) // 4
    noise = os.urandom(100_000)
    _, raw = _sealed(folder_keys, noise)
    assert parse_header(raw).flags == 0
    assert len(raw) == HEADER_SIZE + 24 + padme(4 + len(noise)) + 16


def test_padme() -> None:
    assert [padme(n) for n in (0, 1, 2, 3, 4, 9, 100, 1000)] == [0, 1, 2, 3, 4, 10, 104, 1024]
    for n in list(range(2, 5000)) + [2**20 + k for k in range(-3, 4)] + [16 * 2**20 + 1]:
        padded = padme(n)
        assert n <= padded <= n * 1.12 + 1
        assert padme(padded) == padded  # padded sizes are fixed points
    # far fewer distinct sizes than lengths: that is the point
    assert len({padme(n) for n in range(2**20, 2**21)}) <= 2**11
    with pytest.raises(ValueError):
        padme(-1)


def test_blob_size_hides_exact_chunk_size(folder_keys: FolderKeys) -> None:
    base = os.urandom(2**20)
    cut = 2**20 - 10_000
    sizes = {len(_sealed(folder_keys, base[: cut - k])[1]) for k in range(0, 2000, 97)}
    assert len(sizes) == 1


def test_every_flipped_byte_is_caught(folder_keys: FolderKeys) -> None:
    oid, blob = _sealed(folder_keys, b"small but important")
    for pos in range(len(blob)):
        tampered = bytearray(blob)
        tampered[pos] ^= 0x01
        with pytest.raises(IntegrityError, match=f"object {short_id(oid)}: "):
            open_blob(folder_keys, CHUNK, oid, bytes(tampered))


@pytest.mark.parametrize("cut", [1, 16, 17, 40, 54])
def test_truncation_is_caught(folder_keys: FolderKeys, cut: int) -> None:
    oid, blob = _sealed(folder_keys, TEXT)
    with pytest.raises(IntegrityError, match=f"object {short_id(oid)}: "):
        open_blob(folder_keys, CHUNK, oid, blob[:-cut])
    with pytest.raises(IntegrityError, match="truncated"):
        open_blob(folder_keys, CHUNK, oid, blob[:cut])


def test_appended_bytes_are_caught(folder_keys: FolderKeys) -> None:
    oid, blob = _sealed(folder_keys, TEXT)
    with pytest.raises(IntegrityError, match=_auth_failure(oid)):
        open_blob(folder_keys, CHUNK, oid, blob + b"\0")


def test_blob_swapped_to_another_id(folder_keys: FolderKeys) -> None:
    oid_a, blob_a = _sealed(folder_keys, b"content A")
    oid_b, _ = _sealed(folder_keys, b"content B")
    with pytest.raises(IntegrityError, match=_auth_failure(oid_b)):
        open_blob(folder_keys, CHUNK, oid_b, blob_a)


def test_blob_of_another_kind(folder_keys: FolderKeys) -> None:
    data = b'{"t":"tree","e":[]}'
    oid, blob = _sealed(folder_keys, data, TREE)
    with pytest.raises(IntegrityError, match=f"object {short_id(oid)}: blob holds a tree"):
        open_blob(folder_keys, ObjectKind.FILE, oid, blob)
    relabelled = bytearray(blob)
    relabelled[5] = ObjectKind.FILE  # the kind byte: now the header agrees, the AEAD does not
    with pytest.raises(IntegrityError, match=_auth_failure(oid)):
        open_blob(folder_keys, ObjectKind.FILE, oid, bytes(relabelled))


def test_key_generations(folder_keys: FolderKeys) -> None:
    rotated = FolderKeys(folder_keys.master, generation=2)
    oid, old = _sealed(folder_keys, TEXT)
    new = seal(rotated, CHUNK, oid, TEXT)
    assert parse_header(old).generation == 1 and parse_header(new).generation == 2
    assert open_blob(folder_keys, CHUNK, oid, new) == TEXT  # generation comes from the header
    assert seal(rotated, CHUNK, oid, TEXT, generation=1) == old
    forged = bytearray(old)
    struct.pack_into(">I", forged, 7, 2)  # claim generation 2 for a generation-1 blob
    with pytest.raises(IntegrityError, match=_auth_failure(oid)):
        open_blob(folder_keys, CHUNK, oid, bytes(forged))


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (0, ord("X"), "bad magic"),
        (3, 2, "unsupported blob format version 2"),
        (4, 9, "unknown encryption algorithm 9"),
        (5, 0, "unknown object kind 0"),
        (5, 77, "unknown object kind 77"),
        (6, 0x82, "unknown blob flags 0x82"),
    ],
)
def test_strict_header(folder_keys: FolderKeys, offset: int, value: int, reason: str) -> None:
    oid, blob = _sealed(folder_keys, TEXT)
    bad = bytearray(blob)
    bad[offset] = value
    with pytest.raises(IntegrityError, match=f"object {short_id(oid)}: .*{reason}"):
        open_blob(folder_keys, CHUNK, oid, bytes(bad))


def test_zero_generation_refused(folder_keys: FolderKeys) -> None:
    oid, blob = _sealed(folder_keys, TEXT)
    bad = bytearray(blob)
    struct.pack_into(">I", bad, 7, 0)
    with pytest.raises(IntegrityError, match="invalid key generation"):
        open_blob(folder_keys, CHUNK, oid, bytes(bad))


def test_oversized_blob_refused_before_decryption(folder_keys: FolderKeys) -> None:
    oid, blob = _sealed(folder_keys, b'{"t":"commit"}', ObjectKind.COMMIT)
    huge = blob + bytes(sealed_size_bound(ObjectKind.COMMIT))
    with pytest.raises(IntegrityError, match="exceeds the size limit"):
        open_blob(folder_keys, ObjectKind.COMMIT, oid, huge)


def _forge(keys: FolderKeys, kind: ObjectKind, oid: ObjectId, body: bytes, flags: int) -> bytes:
    """A correctly encrypted blob around an arbitrary body: what a key holder could craft."""
    from chunksync.crypto.seal import _key_state

    header = BlobHeader(kind, keys.generation, flags).encode()
    inner = bytearray(padme(4 + len(body)))
    struct.pack_into(">I", inner, 0, len(body))
    inner[4 : 4 + len(body)] = body
    nonce = os.urandom(24)
    ct = _key_state(keys.aead_key(kind, keys.generation)).cipher.encrypt(
        nonce, bytes(inner), header + oid
    )
    return header + nonce + ct


def test_zip_bomb_refused(folder_keys: FolderKeys) -> None:
    bomb = zstandard.ZstdCompressor(level=3).compress(bytes(MAX_PLAINTEXT[CHUNK] + 1))
    oid = ObjectId(bytes(32))
    blob = _forge(folder_keys, CHUNK, oid, bomb, FLAG_ZSTD)
    with pytest.raises(IntegrityError, match="too large or of unknown size"):
        open_blob(folder_keys, CHUNK, oid, blob)
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(1000))
    blob = _forge(folder_keys, CHUNK, oid, unsized, FLAG_ZSTD)
    with pytest.raises(IntegrityError, match="too large or of unknown size"):
        open_blob(folder_keys, CHUNK, oid, blob)
    blob = _forge(folder_keys, CHUNK, oid, b"not zstd at all", FLAG_ZSTD)
    with pytest.raises(IntegrityError, match="compressed payload"):
        open_blob(folder_keys, CHUNK, oid, blob)


def test_authentic_blob_with_wrong_content_is_refused(folder_keys: FolderKeys) -> None:
    """Even a key holder cannot file content under an id it does not hash to."""
    oid = folder_keys.chunk_id(b"what the id promises")
    blob = _forge(folder_keys, CHUNK, oid, b"something else", 0)
    with pytest.raises(IntegrityError, match="content does not match its id"):
        open_blob(folder_keys, CHUNK, oid, blob)
    with pytest.raises(IntegrityError, match="plaintext does not match its id"):
        seal(folder_keys, CHUNK, oid, b"something else")


def test_seal_argument_checks(folder_keys: FolderKeys) -> None:
    oid = folder_keys.chunk_id(b"x")
    with pytest.raises(ValueError, match="generation"):
        seal(folder_keys, CHUNK, oid, b"x", generation=0)
    with pytest.raises(ValueError, match="level"):
        seal(folder_keys, CHUNK, oid, b"x", level=0)
    with pytest.raises(ValueError, match="exceeds"):
        seal(folder_keys, ObjectKind.COMMIT, oid, bytes(MAX_PLAINTEXT[ObjectKind.COMMIT] + 1))


def test_thread_pool_matches_single_thread(folder_keys: FolderKeys) -> None:
    datas = [os.urandom(50_000) + TEXT * i for i in range(16)]
    oids = [folder_keys.chunk_id(d) for d in datas]
    expected = [seal(folder_keys, CHUNK, o, d) for o, d in zip(oids, datas, strict=True)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        blobs = list(pool.map(lambda od: seal(folder_keys, CHUNK, *od), zip(oids, datas)))
        opened = list(pool.map(lambda ob: open_blob(folder_keys, CHUNK, *ob), zip(oids, blobs)))
    assert blobs == expected
    assert opened == datas
