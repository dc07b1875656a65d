"""Two clients (as two processes would) sharing one credentials file: one rotates the
token, the other's next request is refused 401, re-reads the file and succeeds; a
revoked device gets DeviceRevoked, not endless retries. Real in-process server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chunksync.config import Credential, load_credential, save_credential, token_keeper
from chunksync.errors import DeviceRevoked
from chunksync.transport.http import HttpClient
from chunksync.transport.tokens import renew_at
from chunksync_server import admin
from tests.helpers.server import serve_in_process


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHUNKSYNC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _client() -> HttpClient:
    cred = load_credential()
    return HttpClient(cred.server, ca_file=cred.ca_file, tokens=token_keeper(cred))


async def test_token_rotated_by_another_client_is_reread_after_401(
    tmp_path: Path, home: Path
) -> None:
    async with serve_in_process(tmp_path / "server", token_ttl=3600.0) as srv:
        save_credential(
            Credential(
                srv.base_url,
                srv.user,
                srv.token,
                srv.device_id,
                "laptop",
                expires_at=time.time() + 3600,
                renew_after=time.time() - 1,
            )
        )
        first, second = _client(), _client()
        try:
            assert await first.renew_if_due()  # due: rotates, revoking the token `second` holds
            renewed = load_credential()
            assert renewed.token != srv.token and renewed.token == first.token
            assert renewed.renew_after is not None and renewed.renew_after > time.time()
            assert (home / "credentials.json").stat().st_mode & 0o777 == 0o600
            await first.whoami()  # the new token's first use retires the old one
            # `second` still sends the old token: 401, re-read, retried once, fine
            assert (await second.whoami())["device_id"] == srv.device_id
            assert second.token == renewed.token
            assert not await second.renew_if_due()  # the adopted token is not due
        finally:
            await first.aclose()
            await second.aclose()


async def test_old_credentials_without_expiry_renew_on_first_use(
    tmp_path: Path, home: Path
) -> None:
    async with serve_in_process(tmp_path / "server", token_ttl=90.0) as srv:
        save_credential(Credential(srv.base_url, srv.user, srv.token, srv.device_id, "laptop"))
        client = _client()
        try:
            before = time.time()
            doc = await client.whoami()
            cred = load_credential()
            assert cred.token != srv.token and cred.expires_at == pytest.approx(doc["expires_at"])
            assert cred.renew_after == pytest.approx(renew_at(cred.expires_at, before), abs=5)
        finally:
            await client.aclose()


async def test_revoked_device_is_device_revoked_after_one_reread(
    tmp_path: Path, home: Path
) -> None:
    async with serve_in_process(tmp_path / "server") as srv:
        save_credential(
            Credential(
                srv.base_url,
                srv.user,
                srv.token,
                srv.device_id,
                "laptop",
                expires_at=time.time() + 3600,
                renew_after=time.time() + 3000,
            )
        )
        admin.revoke_device(srv.data_dir, srv.device_id)
        client = _client()
        try:
            with pytest.raises(DeviceRevoked, match="revoked token.*chunksync login") as info:
                await client.folder("docs").get_head()
            assert info.value.exit_code == 11
        finally:
            await client.aclose()
