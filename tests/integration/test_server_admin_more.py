"""``chunksync-server user enable/password/delete``, ``folder members/remove-member/delete``
and ``--version``, through click's CliRunner against a real in-process server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from chunksync import wire
from chunksync_server import admin
from chunksync_server.__main__ import main
from tests.helpers.server import DEFAULT_PASSWORD, create_user, serve_in_process

pytestmark = pytest.mark.integration


def run(data: Path, *args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, [*args, "--data", str(data)], env=env)
    assert result.exit_code == code, (args, result.output, result.stderr)
    return result.output if code == 0 else result.stderr.strip()


async def _status(srv, path: str, token: str | None = None) -> int:
    async with aiohttp.ClientSession(headers=srv.headers(token)) as s:
        async with s.get(srv.url(path)) as r:
            return r.status


async def _make_folder(srv, name: str = "docs") -> str:
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        async with s.post(srv.url(wire.FOLDERS), json={"name": name}) as r:
            assert r.status == 201
        blob = os.urandom(64)
        oid = wire.blob_digest(blob).hex()
        headers = {wire.DIGEST_HEADER: oid}
        async with s.put(
            srv.url(wire.OBJECT, folder=name, oid=oid), data=blob, headers=headers
        ) as r:
            assert r.status == 201
        async with s.put(srv.url(wire.HEAD, folder=name), json={"expected": None, "new": oid}) as r:
            assert r.status == 200
    return oid


def test_version() -> None:
    for flag in ("--version", "-V"):
        result = CliRunner().invoke(main, [flag])
        assert result.exit_code == 0 and result.output.startswith("chunksync-server, version ")


async def test_user_disable_enable_and_password_reset(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    async with serve_in_process(data) as srv:
        run(data, "user", "disable", srv.user)
        assert await _status(srv, wire.WHOAMI) == 401
        assert run(data, "user", "enable", srv.user) == f"user {srv.user} enabled\n"
        assert await _status(srv, wire.WHOAMI) == 200
        pw = tmp_path / "pw"
        pw.write_text("a-new-password\n")
        out = run(data, "user", "password", srv.user, "--password-file", str(pw))
        assert out == f"password of {srv.user} reset; 1 device token(s) revoked\n"
        assert await _status(srv, wire.WHOAMI) == 401  # devices log in again
        async with aiohttp.ClientSession() as s:
            body = {"user": srv.user, "password": DEFAULT_PASSWORD, "device_name": "x"}
            async with s.post(srv.url(wire.LOGIN), json=body) as r:
                assert r.status == 401
            body["password"] = "a-new-password"
            async with s.post(srv.url(wire.LOGIN), json=body) as r:
                assert r.status == 200
                token = (await r.json())["token"]
        env = {"CHUNKSYNC_PASSWORD": "third-password"}
        out = run(data, "user", "password", srv.user, "--keep-devices", env=env)
        assert "0 device token(s) revoked" in out
        assert await _status(srv, wire.WHOAMI, token) == 200
    actions = [e.action for e in admin.read_audit(data)]
    assert {"admin.user.disable", "admin.user.enable", "admin.user.password"} <= set(actions)


def test_user_command_errors(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    create_user(data, "bob")
    assert run(data, "user", "enable", "nobody", code=2) == "chunksync-server: no user 'nobody'"
    short = run(data, "user", "password", "bob", code=2, env={"CHUNKSYNC_PASSWORD": "short"})
    assert short == "chunksync-server: password must have at least 8 characters"
    nobody = run(data, "user", "password", "x", code=2, env={"CHUNKSYNC_PASSWORD": "long-enough"})
    assert nobody == "chunksync-server: no user 'x'"
    no_password = CliRunner().invoke(
        main, ["user", "password", "bob", "--data", str(data)], env={"CHUNKSYNC_PASSWORD": None}
    )
    assert no_password.exit_code == 2 and no_password.stderr.strip() == (
        "chunksync-server: no password: use --password-file or $CHUNKSYNC_PASSWORD"
    )
    refused = run(data, "user", "delete", "bob", code=2)
    assert refused == (
        "chunksync-server: delete user bob and all their devices?: refused without --yes "
        "(stdin is not a terminal)"
    )
    assert (
        run(data, "user", "delete", "nobody", "--yes", code=2)
        == "chunksync-server: no user 'nobody'"
    )


async def test_user_delete_removes_devices_and_memberships(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    create_user(data, "bob")
    async with serve_in_process(data) as srv:
        await _make_folder(srv)
        run(data, "folder", "add-member", "docs", "bob", "--role", "read-write")
        owner = run(data, "user", "delete", srv.user, "--yes", code=2)
        assert owner == (
            f"chunksync-server: user '{srv.user}' owns folder(s) docs: delete them "
            "('folder delete') or make another member owner first"
        )
        assert (
            run(data, "user", "delete", "bob", "--yes")
            == "user bob deleted (0 device(s) removed)\n"
        )
    assert [u["name"] for u in admin.list_users(data)] == [srv.user]
    assert json.loads(run(data, "folder", "members", "docs", "--json")) == [
        {"folder_owner": True, "role": "owner", "user": srv.user}
    ]
    assert admin.read_audit(data)[-1].action == "admin.user.delete"


async def test_members_list_and_remove(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    create_user(data, "bob")
    async with serve_in_process(data) as srv:
        await _make_folder(srv)
        run(data, "folder", "add-member", "docs", "bob", "--role", "read-only")
        assert (
            run(data, "folder", "members", "docs")
            == f"{srv.user}\towner\tfolder owner\nbob\tread-only\n"
        )
        assert run(data, "folder", "remove-member", "docs", "bob") == "bob removed from docs\n"
        assert run(data, "folder", "remove-member", "docs", "bob", code=2) == (
            "chunksync-server: 'bob' is not a member of 'docs'"
        )
        assert run(data, "folder", "remove-member", "docs", srv.user, code=2) == (
            f"chunksync-server: '{srv.user}' owns 'docs' (its quota is theirs): delete the folder instead"
        )
        assert (
            run(data, "folder", "members", "nope", code=2) == "chunksync-server: no folder 'nope'"
        )
        assert run(data, "folder", "remove-member", "nope", "bob", code=2) == (
            "chunksync-server: no folder 'nope'"
        )
        assert (
            run(data, "folder", "remove-member", "docs", "zed", code=2)
            == "chunksync-server: no user 'zed'"
        )
    assert admin.read_audit(data)[-1].action == "admin.folder.member.remove"


async def test_folder_delete_needs_a_stopped_server_and_removes_everything(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    async with serve_in_process(data) as srv:
        await _make_folder(srv)
        busy = run(data, "folder", "delete", "docs", "--yes", code=2)
        assert busy.startswith("chunksync-server: cannot delete 'docs' while a server runs on")
        assert "stop it first" in busy
    assert run(data, "folder", "delete", "docs", code=2).endswith(
        "refused without --yes (stdin is not a terminal)"
    )
    assert (
        run(data, "folder", "delete", "docs", "--yes")
        == "folder docs deleted (1 object(s) removed)\n"
    )
    assert admin.list_folders(data) == []
    assert json.loads(run(data, "stats", "--json"))["objects"] == 0
    last = admin.read_audit(data)[-1]
    assert (last.action, last.folder, json.loads(last.detail)["objects"]) == (
        "admin.folder.delete",
        "docs",
        1,
    )
    assert (
        run(data, "folder", "delete", "docs", "--yes", code=2)
        == "chunksync-server: no folder 'docs'"
    )
    assert (
        run(data, "folder", "delete", "../x", "--yes", code=2)
        == "chunksync-server: invalid folder name '../x'"
    )
    assert "audit chain ok" in run(data, "audit", "--verify")
