"""Fixtures shared by every layer of the suite: fixed keys and a cheap KDF."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from chunksync.crypto.folder_keys import FolderKeys

# A loaded 2-core CI machine must not turn slow examples into failures.
settings.register_profile("chunksync", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("chunksync")

FIXED_MASTER = bytes(range(32))


@pytest.fixture
def folder_keys() -> FolderKeys:
    """A fixed folder key, so ids in tests are reproducible."""
    return FolderKeys(FIXED_MASTER)


@pytest.fixture
def other_folder_keys() -> FolderKeys:
    return FolderKeys(bytes(range(1, 33)))


# session-scoped PostgreSQL and SeaweedFS, started only for the tests that use them
pytest_plugins = ["tests.helpers.backends"]
