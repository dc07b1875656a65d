"""The rollback guard's memory outside the index (``.chunksync/trust``)."""

from __future__ import annotations

from pathlib import Path

from chunksync.storage.trust import TRUST_FILE, Trust, load_trust, save_trust


def test_trust_round_trips_privately_and_garbage_reads_as_none(tmp_path: Path) -> None:
    assert load_trust(tmp_path) is None
    save_trust(tmp_path, Trust("ab" * 32, 7))
    assert load_trust(tmp_path) == Trust("ab" * 32, 7)
    assert (tmp_path / TRUST_FILE).stat().st_mode & 0o777 == 0o600
    for junk in (
        b"\xff",
        b"[]",
        b'{"head": "x", "seq": 1}',
        b'{"head": "' + b"ab" * 32 + b'", "seq": true}',
    ):
        (tmp_path / TRUST_FILE).write_bytes(junk)
        assert load_trust(tmp_path) is None
