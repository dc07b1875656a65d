"""Rotation grace: a token rotation whose answer is lost never locks the device out.

The server rotates, the answer never arrives (a FaultyProxy cuts it): the device still
holds only the old token, which the server keeps valid until the new one is first
used, so the device keeps syncing and simply rotates again later. Once a new token has
been used, the old one is refused: a stolen old token is useless. Real in-process
server, real engine devices over HTTP.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from chunksync import wire
from chunksync.config import Credential, load_credential, save_credential, token_keeper
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.transport.http import HttpClient
from tests.helpers.devices import Device, tree_of
from tests.helpers.faulty_proxy import FaultyProxy
from tests.helpers.server import RunningServer, login, serve_in_process

LIFETIME = 20.0


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHUNKSYNC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


async def status_with(srv: RunningServer, token: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(srv.url(wire.WHOAMI), headers=srv.headers(token)) as r,
    ):
        return r.status


async def rotate_with(srv: RunningServer, token: str) -> str:
    async with (
        aiohttp.ClientSession() as s,
        s.post(srv.url(wire.TOKEN_ROTATE), headers=srv.headers(token)) as r,
    ):
        assert r.status == 200, await r.text()
        return str((await r.json())["token"])


async def test_a_lost_rotation_answer_keeps_the_device_syncing(
    tmp_path: Path, home: Path, folder_keys: FolderKeys
) -> None:
    async with serve_in_process(tmp_path / "server", token_ttl=LIFETIME) as srv:
        async with (
            aiohttp.ClientSession(headers=srv.headers()) as s,
            s.post(srv.url(wire.FOLDERS), json={"name": "docs"}) as r,
        ):
            assert r.status == 201
        port = int(srv.base_url.rsplit(":", 1)[1])
        async with FaultyProxy("127.0.0.1", port) as proxy:
            proxy.cut_response(0, match=wire.TOKEN_ROTATE)  # rotated, but never told
            old = srv.token
            save_credential(
                Credential(
                    proxy.url,
                    srv.user,
                    old,
                    srv.device_id,
                    "laptop",
                    expires_at=time.time() + LIFETIME,
                    renew_after=time.time() - 1,
                )
            )  # due now
            client = HttpClient(proxy.url, tokens=token_keeper(load_credential()))
            async with aiohttp.ClientSession() as s:
                creds = await login(s, srv.base_url, srv.user, device_name="desktop")
            other_client = HttpClient(srv.base_url, creds["token"])
            laptop = Device("laptop", tmp_path / "laptop", client.folder("docs"), folder_keys)
            desktop = Device(
                "desktop", tmp_path / "desktop", other_client.folder("docs"), folder_keys
            )
            try:
                laptop.write("first.txt", "written before the lost answer")
                await laptop.sync()
                assert sum(wire.TOKEN_ROTATE in line for line in proxy.requests) == 1
                assert load_credential().token == old  # nothing arrived, nothing saved
                # the device keeps syncing on its old token and rotates again later
                deadline = time.monotonic() + 3 * LIFETIME
                n = 0
                while load_credential().token == old:
                    assert time.monotonic() < deadline, "the token was never renewed"
                    n += 1
                    laptop.write(f"edit-{n}.txt", f"edit {n}")
                    await laptop.sync()
                    await asyncio.sleep(0.2)
                assert sum(wire.TOKEN_ROTATE in line for line in proxy.requests) == 2
                new = load_credential().token
                assert client.token == new
                laptop.write("after.txt", "sent with the new token")
                await laptop.sync()
                await desktop.sync()
                assert tree_of(laptop.root, mtimes=False) == tree_of(desktop.root, mtimes=False)
                # the new token was used: the old one (say, stolen) is refused from now on
                assert await status_with(srv, old) == 401
                assert await status_with(srv, new) == 200
            finally:
                laptop.close()
                desktop.close()
                await client.aclose()
                await other_client.aclose()


async def test_the_old_token_dies_at_the_new_ones_first_use(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "server") as srv:
        old = srv.token
        lost = await rotate_with(srv, old)  # an answer the client never saw
        assert await status_with(srv, old) == 200
        new = await rotate_with(srv, old)  # so it rotates again with the old token
        assert await status_with(srv, lost) == 401  # the unused successor is revoked
        assert await status_with(srv, old) == 200
        assert await status_with(srv, new) == 200
        assert await status_with(srv, old) == 401  # a stolen old token is useless now
        assert await status_with(srv, new) == 200
        with pytest.raises(AssertionError):
            await rotate_with(srv, old)


async def test_logout_with_the_old_token_revokes_its_unused_successor(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "server") as srv:
        successor = await rotate_with(srv, srv.token)
        async with (
            aiohttp.ClientSession() as s,
            s.post(srv.url(wire.LOGOUT), headers=srv.headers()) as r,
        ):
            assert r.status == 204
        assert await status_with(srv, successor) == 401
        assert await status_with(srv, srv.token) == 401
