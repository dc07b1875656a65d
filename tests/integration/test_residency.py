"""Data residency: a folder pinned to a named store keeps its objects in that bucket only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from chunksync.objects import ObjectId
from chunksync.transport.http import HttpClient
from chunksync_server.__main__ import main as server_main
from chunksync_server.storage.s3 import S3ObjectStore
from tests.helpers.seaweed import SeaweedS3
from tests.helpers.server import serve_in_process

pytestmark = [pytest.mark.s3, pytest.mark.integration]


def pin(data_dir: Path, folder: str, store: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        server_main, ["folder", "pin", folder, store, "--data", str(data_dir)]
    )
    return result.exit_code, result.output


async def test_a_pinned_folder_writes_only_to_its_named_store(
    tmp_path: Path, seaweed: SeaweedS3
) -> None:
    home = seaweed.url("chunksync-home", f"r{os.getpid()}")
    eu = seaweed.url("chunksync-eu", f"r{os.getpid()}")
    data = tmp_path / "srv"
    async with serve_in_process(data, store_url=home, named_stores=(("eu", eu),)) as srv:
        async with aiohttp.ClientSession(headers=srv.headers()) as s:
            for name in ("plain", "gdpr"):
                async with s.post(srv.url("/v1/folders"), json={"name": name}) as r:
                    assert r.status == 201
        assert pin(data, "gdpr", "eu") == (0, "gdpr is pinned to store eu\n")
        client = HttpClient(srv.base_url, srv.token)
        try:
            ids = {name: ObjectId(secrets.token_bytes(32)) for name in ("plain", "gdpr")}
            for name, oid in ids.items():
                await client.folder(name).put_many([(oid, b"blob of " + name.encode())])
                await client.folder(name).cas_head(None, oid.hex())
            code, output = pin(data, "plain", "eu")
            assert code != 0 and "already holds data" in output
        finally:
            await client.aclose()
        folder_ids = {row["name"]: row["id"] for row in _folders(srv.app)}
    stores = {n: S3ObjectStore(u, data / "meta.db") for n, u in (("home", home), ("eu", eu))}
    try:
        gdpr, plain = folder_ids["gdpr"], folder_ids["plain"]
        assert stores["eu"].has_many(gdpr, [ids["gdpr"]]) == {ids["gdpr"]}
        assert stores["home"].has_many(gdpr, [ids["gdpr"]]) == set()
        assert stores["home"].get(plain, ids["plain"]) == b"blob of plain"
        assert stores["eu"].stats(plain).objects == 0
    finally:
        for store in stores.values():
            store.close()


def _folders(app: object) -> list[dict[str, str]]:
    from chunksync_server import db
    from chunksync_server.handlers.common import DB

    rows = app[DB].read_sync(db.all_folders)  # type: ignore[index]
    return [{"name": f.name, "id": f.id} for f in rows]


def test_pinning_checks_the_name_and_the_folder(tmp_path: Path) -> None:
    from chunksync_server import admin
    from chunksync_server.config import Argon2Params

    admin.add_user(tmp_path, "alice", "long enough pw", params=Argon2Params.fast())
    code, output = pin(tmp_path, "nope", "eu")
    assert code == 2 and "no folder 'nope'" in output
    code, output = pin(tmp_path, "nope", "EU!")
    assert code == 2 and "invalid store name" in output
