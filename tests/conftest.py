"""Fixtures shared by every layer of the suite: fixed keys and a cheap KDF."""

from __future__ import annotations

import pytest

from chunksync.crypto.folder_keys import FolderKeys

FIXED_MASTER = bytes(range(32))


@pytest.fixture
def folder_keys() -> FolderKeys:
    """A fixed folder key, so ids in tests are reproducible."""
    return FolderKeys(FIXED_MASTER)


@pytest.fixture
def other_folder_keys() -> FolderKeys:
    return FolderKeys(bytes(range(1, 33)))
