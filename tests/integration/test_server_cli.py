"""The admin CLI through click's CliRunner (and ``python -m chunksync_server`` for ``serve``), and a
kill -9 of a server subprocess in the middle of uploads."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from chunksync import wire
from chunksync_server.__main__ import main
from chunksync_server.config import ServerConfig, ssl_context
from tests.helpers.server import (
    DEFAULT_PASSWORD,
    ServerProcess,
    create_user,
    login,
    serve_in_process,
)
from tests.helpers.tls import self_signed


def cli(data: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, [*args, "--data", str(data)], catch_exceptions=False)
    assert result.exit_code == code, (args, result.output, result.stderr if code == 0 else "")
    return result.output


async def test_admin_commands(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    pw = tmp_path / "pw"
    pw.write_text("s3cret-password\n")
    cli(data, "user", "add", "root", "--password-file", str(pw), "--admin")
    err = CliRunner().invoke(
        main, ["user", "add", "root", "--password-file", str(pw), "--data", str(data)]
    )
    assert (
        err.exit_code == 2 and err.stderr.strip() == "chunksync-server: user 'root' already exists"
    )
    async with serve_in_process(data) as srv:
        async with aiohttp.ClientSession(headers=srv.headers()) as s:
            async with s.post(srv.url(wire.FOLDERS), json={"name": "docs"}) as r:
                assert r.status == 201
            blob = os.urandom(100)
            oid = wire.blob_digest(blob).hex()
            async with s.put(
                srv.url(wire.OBJECT, folder="docs", oid=oid),
                data=blob,
                headers={wire.DIGEST_HEADER: oid},
            ) as r:
                assert r.status == 201
            async with s.put(
                srv.url(wire.HEAD, folder="docs"), json={"expected": None, "new": oid}
            ) as r:
                assert r.status == 200
        # admin commands while the server runs
        users = cli(data, "user", "list")
        assert "root\tadmin" in users and "alice\tuser" in users
        cli(data, "folder", "add-member", "docs", "root", "--role", "read-only")
        folders = json.loads(cli(data, "folder", "list", "--json"))
        assert folders[0]["members"] == {"alice": "owner", "root": "read-only"}
        assert (folders[0]["head"], folders[0]["objects"]) == (oid, 1)
        assert json.loads(cli(data, "stats", "--json"))["objects"] == 1
        assert "check ok" in cli(data, "check")
        devices = json.loads(cli(data, "device", "list", "--json"))
        assert [d["user"] for d in devices] == ["alice"]
        cli(data, "device", "revoke", srv.device_id)
        async with aiohttp.ClientSession(headers=srv.headers()) as s:
            async with s.get(srv.url(wire.WHOAMI)) as r:
                assert r.status == 401
        cli(data, "device", "revoke", "nope", code=2)
        cli(data, "user", "disable", "root")
        async with aiohttp.ClientSession() as s:
            async with s.post(
                srv.url(wire.LOGIN), json={"user": "root", "password": "s3cret-password"}
            ) as r:
                assert r.status == 403
    log = json.loads(cli(data, "audit", "--folder", "docs", "--json"))
    assert [e["action"] for e in log] == ["folder.create", "head.move", "admin.folder.member"]
    assert cli(data, "audit", "--since", "2000-01-01T00:00:00Z").count("\n") >= 8
    assert "audit chain ok" in cli(data, "audit", "--verify")
    conn = sqlite3.connect(data / "meta.db")
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET detail = '{}' WHERE id = 2")
    conn.commit()
    conn.close()
    bad = CliRunner().invoke(main, ["audit", "--verify", "--data", str(data)])
    assert bad.exit_code == 1 and "row 2" in bad.stderr
    assert CliRunner().invoke(main, ["check", "--data", str(data)]).exit_code == 1
    assert CliRunner().invoke(main, ["stats", "--data", str(tmp_path / "none")]).exit_code == 2


async def upload_batches(
    base: str,
    token: str,
    batches: list[list[tuple[bytes, bytes]]],
    done: asyncio.Event | None = None,
) -> int:
    ok = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        for batch in batches:
            try:
                async with s.post(
                    f"{base}/v1/folders/crash/objects",
                    data=io.BytesIO(wire.encode_upload_frames(batch)),
                    headers={"Content-Type": wire.BATCH_TYPE},
                ) as r:
                    assert r.status == 200
                    ok += 1
                    if done is not None and ok == 2:
                        done.set()
            except aiohttp.ClientError:
                break
    return ok


@pytest.mark.slow
async def test_kill9_during_uploads(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    create_user(data, "alice")
    batches = [
        [(wire.blob_digest(b), b) for b in (os.urandom(256 * 1024) for _ in range(8))]
        for _ in range(12)
    ]
    proc = ServerProcess(data).start()
    try:
        async with aiohttp.ClientSession() as s:
            token = (await login(s, proc.base_url, "alice", DEFAULT_PASSWORD))["token"]
            async with s.post(
                f"{proc.base_url}{wire.FOLDERS}",
                json={"name": "crash"},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                assert r.status == 201
        two_done = asyncio.Event()
        uploads = [
            asyncio.create_task(upload_batches(proc.base_url, token, batches[i::3], two_done))
            for i in range(3)
        ]
        await asyncio.wait_for(two_done.wait(), 30)
        proc.kill()  # SIGKILL mid-upload
        await asyncio.gather(*uploads)
        proc.start()
        result = CliRunner().invoke(main, ["check", "--data", str(data)])
        assert result.exit_code == 0, result.output + result.stderr
        all_items = [item for batch in batches for item in batch]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
            fetch = f"{proc.base_url}/v1/folders/crash/objects/fetch"
            ids = [oid.hex() for oid, _ in all_items]
            async with s.post(
                f"{proc.base_url}/v1/folders/crash/objects/missing", json={"ids": ids}
            ) as r:
                absent = set((await r.json())["missing"])
            present = [(oid, blob) for oid, blob in all_items if oid.hex() not in absent]
            assert present, "the two acknowledged batches must have survived"
            async with s.post(fetch, json={"ids": [o.hex() for o, _ in present]}) as r:
                assert list(wire.iter_download_frames(await r.read())) == present
        assert await upload_batches(proc.base_url, token, batches) == len(batches)  # retry
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
            async with s.post(
                f"{proc.base_url}/v1/folders/crash/objects/missing", json={"ids": ids}
            ) as r:
                assert (await r.json())["missing"] == []
    finally:
        proc.stop()
    result = CliRunner().invoke(main, ["check", "--data", str(data)])
    assert result.exit_code == 0, result.output + result.stderr


async def test_serve_with_tls(tmp_path: Path) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    with ServerProcess(tmp_path / "srv", "--tls-cert", str(cert), "--tls-key", str(key)) as proc:
        ctx = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as s:
            async with s.get(f"https://localhost:{proc.port}{wire.HEALTHZ}", ssl=ctx) as r:
                assert r.status == 200
    # the server context refuses anything older than TLS 1.2
    server_ctx = ssl_context(ServerConfig(data_dir=tmp_path, tls_cert=cert, tls_key=key))
    assert server_ctx is not None and server_ctx.minimum_version == ssl.TLSVersion.TLSv1_2
