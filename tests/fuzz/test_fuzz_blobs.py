"""Fuzzing the decoders of sealed blobs and key slots: only project errors, ever.

A hostile server controls every byte of a blob and of a key slot. Three depths:
arbitrary bytes (the header parser), near-misses of real sealed blobs (header, nonce,
ciphertext, tag), and — the part random bytes never reach — ciphertexts that *do*
authenticate under the folder key but carry a malformed inside (length field, padding,
zstd frame), as a buggy or compromised client holding the key could produce.
"""

from __future__ import annotations

import os
import struct

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from chunksync.crypto import keyslots
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import FLAG_ZSTD, BlobHeader, open_blob, parse_header, seal
from chunksync.crypto.xaes import XAES256GCM
from chunksync.objects import ObjectId, ObjectKind

from .strategies import FUZZ, mutations, only_project_errors

pytestmark = pytest.mark.unit

KEYS = FolderKeys(bytes(range(32)))
KINDS = st.sampled_from(list(ObjectKind))
TEXT = b"a chunk of a file, repeated " * 40


def sealed(kind: ObjectKind, data: bytes) -> tuple[ObjectId, bytes]:
    oid = KEYS.object_id(kind, data)
    return oid, seal(KEYS, kind, oid, data)


OID, BLOB = sealed(ObjectKind.CHUNK, TEXT)
_, OTHER = sealed(ObjectKind.TREE, b'{"e":[],"t":"tree"}')


def authentic(kind: ObjectKind, oid: bytes, inner: bytes, flags: int, gen: int = 1) -> bytes:
    """A blob whose AEAD verifies under KEYS, holding exactly ``inner``."""
    header = BlobHeader(kind, gen, flags).encode()
    nonce = os.urandom(24)
    return header + nonce + XAES256GCM(KEYS.aead_key(kind, gen)).encrypt(nonce, inner, header + oid)


@given(data=st.binary(max_size=200))
@FUZZ
def test_header_parser_takes_any_bytes(data: bytes) -> None:
    only_project_errors(parse_header, data)


@given(data=st.binary(max_size=300), kind=KINDS, oid=st.binary(min_size=0, max_size=40))
@FUZZ
def test_open_takes_any_bytes(data: bytes, kind: ObjectKind, oid: bytes) -> None:
    only_project_errors(open_blob, KEYS, kind, ObjectId(oid), data)


@given(data=mutations(BLOB, (OTHER,)), kind=KINDS)
@FUZZ
def test_open_refuses_every_near_miss_of_a_real_blob(data: bytes, kind: ObjectKind) -> None:
    opened = only_project_errors(open_blob, KEYS, kind, OID, data)
    assert opened is None or opened == TEXT


@given(
    length=st.integers(0, 2**32 - 1) | st.integers(0, 64),
    body=st.binary(max_size=64) | st.just(zstandard.ZstdCompressor().compress(TEXT)),
    pad=st.binary(max_size=40),
    zstd=st.booleans(),
    mutate=st.booleans(),
    data=st.data(),
)
@FUZZ
def test_open_refuses_malformed_insides_that_authenticate(
    length: int, body: bytes, pad: bytes, zstd: bool, mutate: bool, data: st.DataObject
) -> None:
    if mutate and body:
        body = data.draw(mutations(body))
    inner = struct.pack(">I", length) + body + pad
    blob = authentic(ObjectKind.CHUNK, OID, inner, FLAG_ZSTD if zstd else 0)
    only_project_errors(open_blob, KEYS, ObjectKind.CHUNK, OID, blob)


SLOT = keyslots.wrap_master_key(bytes(32), "pass", params=keyslots.TEST_PARAMS)


@given(data=st.binary(max_size=120) | mutations(SLOT))
@FUZZ
def test_key_slot_parsers_take_any_bytes(data: bytes) -> None:
    params = only_project_errors(keyslots.slot_params, data)
    # the KDF runs only when the parameters are cheap (mutations keep the test cost)
    if params is not None and params.memory_kib <= 1024 and params.iterations <= 2:
        only_project_errors(
            keyslots.unwrap_master_key, data, "pass", min_params=keyslots.TEST_PARAMS
        )
