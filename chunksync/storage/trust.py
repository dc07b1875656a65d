"""The rollback guard's memory, kept apart from the index so it survives a rebuild.

The index is a cache (docs/design.md) and may be moved aside and rebuilt; the highest
head this device accepted must not go with it, or a server could roll the device back
right after a rebuild. ``.chunksync/trust`` is a tiny JSON file, written atomically
with mode 0600. A missing or unreadable file reads as None (no memory), never a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..fsops import atomic_write_bytes
from ..objects import INT64_MAX, is_hex_id

__all__ = ["TRUST_FILE", "Trust", "load_trust", "save_trust"]

TRUST_FILE = "trust"


@dataclass(frozen=True, slots=True)
class Trust:
    """The accepted head (hex commit id) and its sequence number."""

    head: str
    seq: int


def load_trust(state_dir: Path) -> Trust | None:
    try:
        doc = json.loads((state_dir / TRUST_FILE).read_bytes())
        head, seq = doc["head"], doc["seq"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if (
        not isinstance(head, str)
        or not is_hex_id(head)
        or type(seq) is not int
        or not 0 <= seq <= INT64_MAX
    ):
        return None
    return Trust(head, seq)


def save_trust(state_dir: Path, trust: Trust) -> None:
    data = json.dumps({"head": trust.head, "seq": trust.seq}, sort_keys=True).encode()
    atomic_write_bytes(state_dir / TRUST_FILE, data, mode=0o600)
