"""Session fixtures for the scale-out backends: one PostgreSQL cluster, one SeaweedFS.

Loaded for the whole suite from ``tests/conftest.py`` (``pytest_plugins``) so that
every module shares ONE cluster and ONE gateway per session; they start only when a
test asks for them. ``pg_url`` is a fresh database per test; ``s3_url`` a fresh prefix in one
bucket per test on the shared gateway (a bucket is a SeaweedFS collection with volumes of its own). A missing PostgreSQL or SeaweedFS fails the test
loudly (``scripts/setup.sh`` installs both).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests.helpers.postgres import PgCluster
from tests.helpers.seaweed import SeaweedS3, dummy_credentials

_buckets = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    return pg_cluster.new_database()


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    for name, value in dummy_credentials().items():
        os.environ.setdefault(name, value)
    with SeaweedS3() as gateway:
        yield gateway


@pytest.fixture
def s3_url(seaweed: SeaweedS3) -> str:
    return seaweed.url("chunksync-test", f"t{os.getpid()}-{next(_buckets)}")
