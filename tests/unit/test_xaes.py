"""XAES-256-GCM against the C2SP vectors, an independent KDF, and tampering."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import threading
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode
from hypothesis import given, settings
from hypothesis import strategies as st

from chunksync.crypto.xaes import XAES256GCM

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "xaes" / "c2sp.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=["no-aad", "aad"])
def test_c2sp_vectors(vector: dict[str, str]) -> None:
    cipher = XAES256GCM(bytes.fromhex(vector["key"]))
    nonce = vector["nonce_ascii"].encode()
    plaintext = vector["plaintext_ascii"].encode()
    aad = vector["aad_ascii"].encode()
    expected = bytes.fromhex(vector["ciphertext"] + vector["tag"])

    assert cipher.encrypt(nonce, plaintext, aad) == expected
    assert cipher.decrypt(nonce, expected, aad) == plaintext


class _ShakeStream:
    """Reads SHAKE-128("") as an endless stream (hashlib only gives fixed-length output)."""

    def __init__(self, window: int) -> None:
        self._window = window
        self._produced = 0
        self._buf = b""
        self._pos = 0

    def read(self, n: int) -> bytes:
        if self._pos + n > len(self._buf):
            self._produced += self._window
            whole = hashlib.shake_128(b"").digest(self._produced)
            consumed = self._produced - self._window - (len(self._buf) - self._pos)
            self._buf = whole[consumed:]
            self._pos = 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out


def _accumulated(iterations: int, window: int) -> str:
    seed = _ShakeStream(window)
    digest = hashlib.shake_128()
    for _ in range(iterations):
        key = seed.read(32)
        nonce = seed.read(24)
        plaintext = seed.read(seed.read(1)[0])
        aad = seed.read(seed.read(1)[0])
        cipher = XAES256GCM(key)
        ciphertext = cipher.encrypt(nonce, plaintext, aad)
        assert cipher.decrypt(nonce, ciphertext, aad) == plaintext
        digest.update(ciphertext)
    return digest.hexdigest(32)


def test_shake_stream_is_continuous() -> None:
    stream = _ShakeStream(window=100)
    pieces = b"".join(stream.read(n) for n in (7, 93, 1, 150, 49, 255))
    assert pieces == hashlib.shake_128(b"").digest(len(pieces))


def test_c2sp_accumulated_10k() -> None:
    assert _accumulated(10_000, window=8 << 20) == VECTORS["accumulated"]["10000"]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("CHUNKSYNC_SLOW_TESTS"), reason="~30 s; set CHUNKSYNC_SLOW_TESTS=1"
)
def test_c2sp_accumulated_1m() -> None:
    assert _accumulated(1_000_000, window=64 << 20) == VECTORS["accumulated"]["1000000"]


def test_key_derivation_matches_cryptography_kbkdf() -> None:
    """Cross-check the one-block CMAC shortcut against the library's SP 800-108 KDF."""
    for i in range(20):
        key = hashlib.sha256(b"key%d" % i).digest()
        nonce = hashlib.sha256(b"nonce%d" % i).digest()[:24]
        kdf = KBKDFCMAC(
            algorithms.AES,
            Mode.CounterMode,
            32,
            2,
            None,
            CounterLocation.BeforeFixed,
            None,
            None,
            b"X\x00" + nonce[:12],
        )
        assert XAES256GCM(key).derive_key(nonce) == kdf.derive(key)


@settings(max_examples=50, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=24, max_size=24),
    data=st.binary(max_size=4096),
    aad=st.binary(max_size=64),
)
def test_round_trip(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> None:
    cipher = XAES256GCM(key)
    sealed = cipher.encrypt(nonce, data, aad)
    assert len(sealed) == len(data) + 16
    assert cipher.decrypt(nonce, sealed, aad) == data


def test_every_flipped_bit_fails() -> None:
    cipher = XAES256GCM(bytes(range(32)))
    nonce, aad = bytes(24), b"header"
    sealed = cipher.encrypt(nonce, b"attack at dawn", aad)
    for pos in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[pos] ^= 0x01
        with pytest.raises(InvalidTag):
            cipher.decrypt(nonce, bytes(tampered), aad)
    for pos in range(24):
        other = bytearray(nonce)
        other[pos] ^= 0x80  # both halves of the nonce matter: key derivation and GCM
        with pytest.raises(InvalidTag):
            cipher.decrypt(bytes(other), sealed, aad)
    with pytest.raises(InvalidTag):
        cipher.decrypt(nonce, sealed, aad + b"x")
    with pytest.raises(InvalidTag):
        cipher.decrypt(nonce, sealed[:-1], aad)
    with pytest.raises(InvalidTag):
        XAES256GCM(bytes(32)).decrypt(nonce, sealed, aad)


def test_rejects_bad_sizes_and_hides_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        XAES256GCM(bytes(16))
    cipher = XAES256GCM(b"\xab" * 32)
    with pytest.raises(ValueError, match="24 bytes"):
        cipher.encrypt(bytes(12), b"", None)
    assert repr(cipher) == "XAES256GCM(<key hidden>)"
    with pytest.raises(TypeError):
        pickle.dumps(cipher)


def test_one_instance_shared_by_threads() -> None:
    cipher = XAES256GCM(os.urandom(32))
    nonces = [os.urandom(24) for _ in range(4)]
    expected = [cipher.encrypt(n, b"x" * 1000, b"ad") for n in nonces]
    results: dict[int, list[bytes]] = {}
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        barrier.wait()
        results[i] = [cipher.encrypt(nonces[i], b"x" * 1000, b"ad") for _ in range(200)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert set(results[i]) == {expected[i]}
