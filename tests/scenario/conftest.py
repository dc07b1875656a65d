"""Shared scenario fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.devices import Device


@pytest.fixture
def memory_pair(
    tmp_path: Path, folder_keys: FolderKeys
) -> Iterator[tuple[Device, Device, MemoryChunkStore]]:
    """Devices ``a`` and ``b`` on one in-memory store."""
    store = MemoryChunkStore()
    a, b = (
        Device("a", tmp_path / "a", store, folder_keys),
        Device("b", tmp_path / "b", store, folder_keys),
    )
    yield a, b, store
    a.close()
    b.close()
