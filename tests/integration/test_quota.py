"""Storage quotas: an upload over the owner's quota is refused in one line and nothing
local is touched; raising the quota lets the next sync through."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from chunksync.errors import QuotaExceeded
from chunksync.transport.http import HttpClient
from chunksync_server import admin
from chunksync_server.__main__ import main as server_main
from tests.helpers.devices import Device, tree_of
from tests.helpers.server import login, serve_in_process


async def test_quota_refuses_then_allows(tmp_path: Path, folder_keys) -> None:
    async with serve_in_process(tmp_path / "srv") as srv:
        async with aiohttp.ClientSession() as s:
            await s.post(srv.url("/v1/folders"), json={"name": "docs"}, headers=srv.headers())
            creds = await login(s, srv.base_url, srv.user, device_name="laptop")
        client = HttpClient(srv.base_url, creds["token"])
        device = Device("laptop", tmp_path / "laptop", client.folder("docs"), folder_keys)
        try:
            result = CliRunner().invoke(
                server_main, ["user", "quota", srv.user, "300K", "--data", str(srv.data_dir)]
            )
            assert result.exit_code == 0, result.output
            device.write("small.bin", os.urandom(50_000))
            await device.sync()
            head = (await client.folder("docs").get_head()).head

            device.write("big.bin", os.urandom(1_000_000))
            before = tree_of(device.root)
            with pytest.raises(QuotaExceeded, match="quota exceeded"):
                await device.sync()
            assert tree_of(device.root) == before
            assert (await client.folder("docs").get_head()).head == head

            admin.set_quota(srv.data_dir, srv.user, None)
            assert (await device.sync()).pushed
        finally:
            device.close()
            await client.aclose()
