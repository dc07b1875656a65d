"""The CLI's start-up imports only what every command needs: the heavy libraries load
with the command that uses them (a large part of a no-change sync was start-up)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiohttp", "lmdb", "zstandard", "cryptography", "rich", "watchdog")


def test_importing_the_cli_loads_no_heavy_library():
    code = f"import sys, chunksync.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_the_transport_package_still_offers_its_implementations():
    from chunksync import transport
    from chunksync.transport.http import HttpClient
    from chunksync.transport.memory import MemoryChunkStore

    assert transport.HttpClient is HttpClient
    assert transport.MemoryChunkStore is MemoryChunkStore
