"""Key slots: round trips, passphrase changes, tampering and refused downgrades."""

from __future__ import annotations

import struct
import time

import pytest

from chunksync.crypto import keyslots
from chunksync.crypto.keyslots import (
    DEFAULT_PARAMS,
    MAX_PARAMS,
    MIN_PARAMS,
    TEST_PARAMS,
    KdfParams,
    new_master_key,
    open_any_slot,
    rewrap,
    slot_params,
    unwrap_master_key,
    wrap_master_key,
)
from chunksync.errors import ConfigError, IntegrityError, UserError, WrongPassphrase

PASS = "correct horse battery staple"
FAST = {"min_params": TEST_PARAMS}
# offsets in the slot: magic 0..3, version 4, kdf 5, aead 6, memory 7..10,
# iterations 11..14, lanes 15..18, salt length 19, salt 20..35, nonce 36..59, wrapped 60..
MEMORY, ITERATIONS, LANES, SALT, NONCE, WRAPPED = 7, 11, 15, 20, 36, 60


@pytest.fixture
def master() -> bytes:
    return new_master_key()


@pytest.fixture
def slot(master: bytes) -> bytes:
    return wrap_master_key(master, PASS, params=TEST_PARAMS)


def test_round_trip(master: bytes, slot: bytes) -> None:
    assert len(master) == 32 and master != new_master_key()
    assert unwrap_master_key(slot, PASS, **FAST) == master
    assert len(slot) == WRAPPED + 32 + 16


def test_fresh_salt_and_nonce_every_wrap(master: bytes, slot: bytes) -> None:
    again = wrap_master_key(master, PASS, params=TEST_PARAMS)
    assert again != slot
    assert slot_params(again).salt != slot_params(slot).salt


def test_default_params_cost_and_round_trip(master: bytes) -> None:
    """The production setting: measured, not guessed (~0.3 s on the dev machine)."""
    assert DEFAULT_PARAMS.at_least(MIN_PARAMS) and MAX_PARAMS.at_least(DEFAULT_PARAMS)
    started = time.perf_counter()
    slot = wrap_master_key(master, PASS)
    elapsed = time.perf_counter() - started
    assert slot_params(slot) == KdfParams(131072, 4, 4, slot_params(slot).salt)
    assert unwrap_master_key(slot, PASS) == master
    assert 0.02 < elapsed < 10  # a floor catches a KDF that silently stopped working


def test_wrong_passphrase(slot: bytes) -> None:
    with pytest.raises(WrongPassphrase, match="^wrong passphrase: it opens none of this folder"):
        unwrap_master_key(slot, PASS + "!", **FAST)


def test_passphrase_is_nfc_normalized(master: bytes) -> None:
    composed, decomposed = "caf\u00e9 sécurité", "cafe\u0301 se\u0301curite\u0301"
    slot = wrap_master_key(master, decomposed, params=TEST_PARAMS)
    assert unwrap_master_key(slot, composed, **FAST) == master


def test_empty_passphrase_refused(master: bytes) -> None:
    with pytest.raises(UserError, match="must not be empty"):
        wrap_master_key(master, "", params=TEST_PARAMS)


@pytest.mark.parametrize("offset", [MEMORY + 3, ITERATIONS + 3, LANES + 3, SALT, SALT + 15])
def test_raised_params_or_changed_salt_fail(slot: bytes, offset: int) -> None:
    tampered = bytearray(slot)
    tampered[offset] ^= 0x02  # raising a cost passes the floor, but the AEAD binds it
    with pytest.raises(WrongPassphrase):
        unwrap_master_key(bytes(tampered), PASS, **FAST)


@pytest.mark.parametrize("offset", [NONCE, NONCE + 23, WRAPPED, WRAPPED + 47])
def test_tampered_nonce_or_ciphertext_fail(slot: bytes, offset: int) -> None:
    tampered = bytearray(slot)
    tampered[offset] ^= 0x80
    with pytest.raises(WrongPassphrase):
        unwrap_master_key(bytes(tampered), PASS, **FAST)


def test_downgraded_slot_refused_before_kdf(master: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    strong = wrap_master_key(master, PASS, params=MIN_PARAMS)
    weakened = bytearray(strong)
    struct.pack_into(">I", weakened, MEMORY, 64)
    struct.pack_into(">I", weakened, ITERATIONS, 1)

    def no_kdf(*args: object) -> bytes:
        raise AssertionError("the KDF ran on a downgraded slot")

    with monkeypatch.context() as patch:
        patch.setattr(keyslots, "_derive_kek", no_kdf)
        with pytest.raises(IntegrityError, match="below the minimum .*a possible downgrade"):
            unwrap_master_key(bytes(weakened), PASS)
    # a slot honestly made with tiny params is refused by default, too
    with pytest.raises(IntegrityError, match="below the minimum"):
        unwrap_master_key(wrap_master_key(master, PASS, params=TEST_PARAMS), PASS)


def test_memory_bomb_params_refused(slot: bytes) -> None:
    huge = bytearray(slot)
    struct.pack_into(">I", huge, MEMORY, 64 * 1024 * 1024)  # 64 GiB
    with pytest.raises(IntegrityError, match="exceed the maximum"):
        unwrap_master_key(bytes(huge), PASS, **FAST)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: s[:10], "truncated"),
        (lambda s: s[:-1], "wrong length"),
        (lambda s: s + b"\0", "wrong length"),
        (lambda s: b"XXXX" + s[4:], "bad magic"),
        (lambda s: s[:4] + b"\x02" + s[5:], "unsupported format"),
        (lambda s: s[:5] + b"\x02" + s[6:], "unsupported format"),
        (lambda s: s[:LANES] + bytes(4) + s[LANES + 4 :], "lanes"),
        (lambda s: s[:19] + b"\x00" + s[20:], "wrong length"),
        ("not bytes", "not bytes"),
    ],
)
def test_malformed_slots(slot: bytes, mutate: object, reason: str) -> None:
    bad = mutate(slot) if callable(mutate) else mutate
    with pytest.raises(IntegrityError, match=f"key slot .*{reason}"):
        unwrap_master_key(bad, PASS, **FAST)  # type: ignore[arg-type]


def test_rewrap(master: bytes, slot: bytes) -> None:
    new = rewrap(slot, PASS, "a new passphrase", min_params=TEST_PARAMS)
    assert unwrap_master_key(new, "a new passphrase", **FAST) == master
    assert slot_params(new).salt != slot_params(slot).salt
    assert slot_params(new).memory_kib == TEST_PARAMS.memory_kib
    with pytest.raises(WrongPassphrase):
        unwrap_master_key(new, PASS, **FAST)
    with pytest.raises(WrongPassphrase):
        rewrap(slot, "not it", "whatever", min_params=TEST_PARAMS)
    stronger = rewrap(slot, PASS, "x", params=MIN_PARAMS, min_params=TEST_PARAMS)
    assert slot_params(stronger).at_least(MIN_PARAMS)


def test_open_any_slot(master: bytes, slot: bytes) -> None:
    other = wrap_master_key(master, "recovery words", params=TEST_PARAMS)
    foreign = wrap_master_key(new_master_key(), "someone else", params=TEST_PARAMS)
    slots = {"laptop": foreign, "main": slot, "recovery": other}
    assert open_any_slot(slots, PASS, **FAST) == master
    assert open_any_slot(slots, "recovery words", **FAST) == master
    with pytest.raises(WrongPassphrase, match="opens none"):
        open_any_slot(slots, "nope", **FAST)


def test_open_any_slot_skips_bad_slots(master: bytes, slot: bytes) -> None:
    downgraded = wrap_master_key(master, PASS, params=TEST_PARAMS)
    assert open_any_slot({"junk": b"garbage", "ok": slot}, PASS, **FAST) == master
    # only refused slots: say why rather than blame the passphrase
    with pytest.raises(IntegrityError, match="key slot 'weak': .*below the minimum"):
        open_any_slot({"weak": downgraded}, PASS)
    with pytest.raises(ConfigError, match="no key slots"):
        open_any_slot({}, PASS)


def test_params_validation() -> None:
    with pytest.raises(ValueError):
        KdfParams(memory_kib=4, iterations=1, lanes=1)
    with pytest.raises(ValueError):
        KdfParams(memory_kib=64, iterations=0, lanes=1)
    with pytest.raises(ValueError):
        KdfParams(memory_kib=64, iterations=1, lanes=1, salt=b"short")
    with pytest.raises(ValueError):
        wrap_master_key(b"short", PASS, params=TEST_PARAMS)
