"""The audit log's newest rows cannot be removed unnoticed (the chain head is kept in
``audit-head.json`` and checked by ``audit --verify`` and ``check``), and denied requests
write one audit row per caller and route per window, counting the rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
from click.testing import CliRunner

from chunksync import wire
from chunksync_server import admin
from chunksync_server.__main__ import main
from tests.helpers.server import RunningServer, login, serve_in_process


def cli(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--data", str(data)], catch_exceptions=False)
    return result.exit_code, result.output + result.stderr


def delete_rows(data: Path, where: str) -> None:
    """What an attacker with write access to meta.db can do."""
    conn = sqlite3.connect(data / "meta.db")
    try:
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute(f"DELETE FROM audit WHERE {where}")
        conn.commit()
    finally:
        conn.close()


async def some_activity(srv: RunningServer) -> None:
    async with aiohttp.ClientSession(headers=srv.headers()) as s:
        async with s.post(srv.url(wire.FOLDERS), json={"name": "docs"}) as r:
            assert r.status == 201
        await login(s, srv.base_url, srv.user, device_name="laptop")


async def test_deleting_the_newest_audit_rows_is_detected(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv") as srv:
        await some_activity(srv)
    data = srv.data_dir
    ok = admin.verify_audit(data)
    assert ok.ok and ok.head is not None and ok.head.seq == ok.rows >= 5
    code, out = cli(data, "audit", "--verify")
    assert code == 0 and f"head {ok.head.seq} {ok.head.hash}" in out
    delete_rows(data, f"id > {ok.rows - 2}")
    result = admin.verify_audit(data)
    assert not result.ok and result.first_bad == ok.rows - 1 and "missing" in result.reason
    code, out = cli(data, "audit", "--verify")
    assert code == 1 and "missing" in out
    code, out = cli(data, "check")
    assert code == 1 and "audit log" in out


async def test_deleting_every_audit_row_is_detected(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv") as srv:
        await some_activity(srv)
    delete_rows(srv.data_dir, "1")
    result = admin.verify_audit(srv.data_dir)
    assert not result.ok and result.rows == 0 and result.first_bad == 1


async def test_new_rows_after_a_truncation_do_not_hide_it(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    async with serve_in_process(data) as srv:
        await some_activity(srv)
        rows = admin.verify_audit(data).rows
        delete_rows(data, f"id > {rows - 3}")
        async with aiohttp.ClientSession() as s:  # the server goes on appending
            for i in range(5):
                await login(s, srv.base_url, srv.user, device_name=f"d{i}")
    result = admin.verify_audit(data)
    assert not result.ok and result.first_bad == rows  # the recorded head row differs
    assert "recorded chain head" in result.reason


async def test_a_removed_head_file_is_reported(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv") as srv:
        await some_activity(srv)
    (srv.data_dir / "audit-head.json").unlink()
    result = admin.verify_audit(srv.data_dir)
    assert not result.ok and "audit-head.json is missing" in result.reason


def denied_rows(data: Path) -> list[dict[str, object]]:
    return [e.to_json()["detail"] for e in admin.read_audit(data) if e.action == "request.denied"]


async def test_a_revoked_device_retrying_writes_one_audit_row_per_window(tmp_path: Path) -> None:
    from chunksync_server.app import DENIALS

    async with serve_in_process(tmp_path / "srv") as srv:
        async with aiohttp.ClientSession() as s:
            old = await login(s, srv.base_url, srv.user, device_name="stolen")
            admin.revoke_device(srv.data_dir, old["device_id"])
            clock = [1000.0]
            srv.app[DENIALS].clock = lambda: clock[0]

            async def retry(times: int) -> None:
                for _ in range(times):
                    async with s.get(srv.url(wire.WHOAMI), headers=srv.headers(old["token"])) as r:
                        assert r.status == 401

            await retry(20)
            assert len(denied_rows(srv.data_dir)) == 1
            async with s.get(srv.url(wire.WHOAMI)) as r:  # another caller: its own row
                assert r.status == 401
            assert len(denied_rows(srv.data_dir)) == 2
            clock[0] += 601  # the window has passed
            await retry(3)
    rows = denied_rows(srv.data_dir)
    assert len(rows) == 3 and rows[-1]["suppressed"] == 19 and "suppressed" not in rows[0]
