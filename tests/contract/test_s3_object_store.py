"""The ObjectStore conformance suite against S3ObjectStore on a real SeaweedFS gateway.

The contract runs with the index in PostgreSQL (the deployment the S3 store is for);
the SQLite index is covered by the tests below the contract (the index queries are the
same text on both engines, see chunksync_server/sqldialect.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync.errors import ConfigError
from chunksync_server.storage import ObjectStore, open_store
from chunksync_server.storage.s3 import S3ObjectStore
from chunksync_server.storage.s3client import parse_s3_url
from tests.contract.test_object_store import ObjectStoreContract
from tests.helpers.stores import damage, make_items

pytestmark = [pytest.mark.s3]


@pytest.mark.postgres
class TestS3ObjectStoreContract(ObjectStoreContract):
    """Every guarantee of the ObjectStore contract, on SeaweedFS with a PostgreSQL index."""

    @pytest.fixture
    def store(self, s3_url: str, pg_url: str) -> Iterator[ObjectStore]:
        backend = S3ObjectStore(s3_url, pg_url)
        yield backend
        backend.close()


def test_damage_is_quarantined_with_a_sqlite_index(tmp_path: Path, s3_url: str) -> None:
    store = S3ObjectStore(s3_url, tmp_path / "meta.db")
    try:
        items = make_items(4, seed=51, max_size=500)
        items = [(oid, blob or b"x") for oid, blob in items]
        store.put_many("f1", items)
        damage(store, "f1", items[0][0])
        assert store.get_many("f1", [oid for oid, _ in items]) == dict(items[1:])
        assert "waiting for a client" in store.check()[0]
        assert store.put_many("f1", items) == 1
        assert store.check() == [] and store.stats("f1").objects == 4
    finally:
        store.close()


def test_two_processes_share_one_bucket_and_index(tmp_path: Path, s3_url: str) -> None:
    """What one server stores, another (same bucket, same database) serves at once."""
    first = S3ObjectStore(s3_url, tmp_path / "meta.db")
    second = S3ObjectStore(s3_url, tmp_path / "meta.db")
    try:
        items = make_items(20, seed=50)
        assert first.put_many("f1", items) == 20
        assert second.has_many("f1", [oid for oid, _ in items]) == {oid for oid, _ in items}
        assert second.put_many("f1", items) == 0  # put-if-absent across processes
        assert second.get_many("f1", [oid for oid, _ in items]) == dict(items)
    finally:
        first.close()
        second.close()


def test_open_store_picks_s3_and_refuses_credentials_in_the_url(
    tmp_path: Path, s3_url: str
) -> None:
    store = open_store(s3_url, meta=tmp_path / "meta.db")
    try:
        assert isinstance(store, S3ObjectStore)
    finally:
        store.close()
    with pytest.raises(ConfigError, match="credentials"):
        parse_s3_url("s3://key:secret@bucket")
    with pytest.raises(ConfigError, match="unknown S3 store option"):
        parse_s3_url("s3://bucket?endpoint=http://x&colour=red")


def test_check_repair_changes_the_shared_epoch(tmp_path: Path, s3_url: str) -> None:
    """Every server of a cluster must answer the new epoch, so it lives in the database."""
    from chunksync_server import admin, db, epoch
    from chunksync_server.config import Argon2Params

    admin.add_user(tmp_path, "alice", "long enough pw", params=Argon2Params.fast())
    store = S3ObjectStore(s3_url, tmp_path / "meta.db")
    items = [(bytes([n]) * 32, bytes([n]) * 300) for n in range(1, 4)]
    try:
        store.put_many("f1", items)
        damage(store, "f1", items[0][0])
    finally:
        store.close()
    conn = db.connect(tmp_path / "meta.db")
    try:
        with db.transaction(conn):
            before = epoch.shared_epoch(conn)
        report = admin.check_report(tmp_path, s3_url, repair=True)
        assert report.quarantined == 1
        with db.transaction(conn):
            assert epoch.shared_epoch(conn) != before
    finally:
        conn.close()
