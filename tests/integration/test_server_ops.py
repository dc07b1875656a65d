"""Running the server: one ``serve`` per data directory, the TOML config file, the
structured access and error logs (and that no secret reaches them)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from chunksync import logsetup, wire
from chunksync_server.__main__ import main, serve
from chunksync_server.accesslog import access_log
from chunksync_server.config_file import settings_of
from tests.helpers.server import DEFAULT_PASSWORD, ServerProcess, create_user, login

pytestmark = pytest.mark.integration

SECRET_FOLDER = "tax-returns-2026"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_access_log_lines_and_no_secret_in_them(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    create_user(data, "alice")
    unused = tmp_path / "unused.log"
    config = tmp_path / "server.toml"
    config.write_text(f'log-file = "{unused}"\nlog-level = "info"\ntoken_days = 2\n')
    with ServerProcess(data, "--config", str(config)) as proc:
        log_file = proc.log_path  # ServerProcess's --log-file flag wins over the file
        async with aiohttp.ClientSession() as s:
            creds = await login(s, proc.base_url, "alice")
            token = creds["token"]
            headers = {"Authorization": f"Bearer {token}"}
            async with s.post(
                proc.base_url + wire.FOLDERS, json={"name": SECRET_FOLDER}, headers=headers
            ) as r:
                assert r.status == 201
            async with s.get(
                proc.base_url + wire.WHOAMI, headers={"Authorization": "Bearer x"}
            ) as r:
                assert r.status == 401
            url = proc.base_url + wire.HEAD.format(folder=SECRET_FOLDER)
            async with s.get(url, headers=headers) as r:
                assert r.status == 200
        expires_in = creds["expires_at"] - _lines(log_file)[0]["time"]
        assert expires_in < 3 * 86_400  # token-days from the config file
    assert not unused.exists()
    text = log_file.read_text()
    lines = _lines(log_file)  # every line is JSON (a file is not a terminal)
    requests = [d for d in lines if d["event"] == "request"]
    assert [(d["method"], d["route"], d["status"]) for d in requests] == [
        ("POST", wire.LOGIN, 200),
        ("POST", wire.FOLDERS, 201),
        ("GET", wire.WHOAMI, 401),
        ("GET", wire.HEAD, 200),
    ]
    login_line, created = requests[0], requests[1]
    assert login_line["user_id"] is None and created["device_id"] == creds["device_id"]
    assert created["user_id"] == 1 and created["bytes_in"] > 0 and created["bytes_out"] > 0
    assert all(d["duration_ms"] >= 0 and d["logger"] == "chunksync_server.access" for d in requests)
    assert any(d["event"] == "started" for d in lines)
    for secret in (token, DEFAULT_PASSWORD, SECRET_FOLDER, "Bearer"):
        assert secret not in text


def test_a_second_server_on_the_same_data_refuses(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    with ServerProcess(data) as proc:
        result = CliRunner().invoke(main, ["serve", "--data", str(data), "--port", "0"])
        assert result.exit_code == 2
        assert result.stderr.strip() == (
            f"chunksync-server: cannot serve: another chunksync-server (pid {proc.proc.pid} "
            f"serve) is using {data.resolve()}; stop it first, or use another --data"
        )
        migrate = CliRunner().invoke(main, ["migrate", "--data", str(data)])
        assert (
            migrate.exit_code == 2 and "cannot migrate: another chunksync-server" in migrate.stderr
        )
        # admin commands still work beside the running server
        assert CliRunner().invoke(main, ["user", "list", "--data", str(data)]).exit_code == 0


def test_config_file_settings_map_to_every_serve_flag(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('data = "/srv/x"\nport = 9000\ntls-cert = "/c.pem"\nlog_format = "json"\n')
    assert settings_of(serve, path) == {
        "data_dir": "/srv/x",
        "port": 9000,
        "tls_cert": "/c.pem",
        "log_format": "json",
    }
    path.write_text("prot = 9000\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"unknown setting 'prot' in {path} (known: data," in message
    assert all(f" {flag}," in message for flag in ("host", "log-file", "store", "token-days"))
    path.write_text("port = [\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2 and "is not valid TOML" in result.stderr
    path.write_text('port = "eighty"\ndata = "/nonexistent/x"\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2 and "'eighty' is not a valid integer" in result.stderr
    missing = CliRunner().invoke(main, ["serve", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


async def test_an_unexpected_error_is_one_error_line_and_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("password=hunter2 went wrong")

    app = web.Application(middlewares=[access_log])
    app.router.add_get("/v1/folders/{folder}/boom", boom)
    caplog.set_level(logging.INFO)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(f"/v1/folders/{SECRET_FOLDER}/boom")
        assert resp.status == 500
    failed = [r for r in caplog.records if r.name == "chunksync_server.error"]
    assert len(failed) == 1 and failed[0].route == "/v1/folders/{folder}/boom"
    assert failed[0].error == "RuntimeError" and failed[0].exc_info
    (access,) = [r for r in caplog.records if r.name == "chunksync_server.access"]
    assert (access.status, access.route) == (500, "/v1/folders/{folder}/boom")


def test_redaction_of_secret_fields_and_bearer_credentials() -> None:
    line = logsetup.render(
        {
            "event": "x",
            "token": "t0k",
            "password": "pw",
            "folder_key": "k",
            "note": "sent Authorization: Bearer abc.def",
            "path": "keep me",
        }
    )
    doc = json.loads(line)
    assert doc["token"] == doc["password"] == doc["folder_key"] == "[redacted]"
    assert doc["note"] == "sent Authorization: Bearer [redacted]" and doc["path"] == "keep me"
    assert "abc.def" not in line and "t0k" not in line


def test_daemon_events_and_warnings_share_one_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the shared setup, a daemon event and a library warning are both JSON lines
    (stderr is not a terminal here); --log-format human gives escaped plain lines."""
    from chunksync.daemon_util import log_event
    from chunksync.output import setup_logging

    setup_logging()  # as any CLI command before: the plain handler is replaced, then back
    before = list(logging.getLogger().handlers)
    with logsetup.session(logsetup.LogSettings(level="info")):
        log_event("synced", folder="docs", path="red\x1b[31m.txt")
        logging.getLogger("chunksync.index").warning("index at %s rebuilt", "/x\ny")
        lines = capsys.readouterr().err.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [(d["event"], d["level"]) for d in docs] == [
        ("synced", "info"),
        ("index at /x\ny rebuilt", "warning"),
    ]
    assert docs[0]["path"] == "red\x1b[31m.txt" and "\x1b" not in lines[0]
    with logsetup.session(logsetup.LogSettings(level="info", fmt="human")):
        log_event("synced", folder="docs", path="red\x1b[31m.txt")
        (human,) = capsys.readouterr().err.splitlines()
    assert human == "chunksync: chunksync.daemon: synced folder=docs path=red\\x1b[31m.txt"
    log_file = tmp_path / "d.log"
    with logsetup.session(logsetup.LogSettings(level="warning", file=log_file)):
        log_event("synced", folder="docs")  # info: below the level
        log_event("offline", folder="docs", message="no route")
    assert [d["event"] for d in _lines(log_file)] == ["offline"]
    assert logging.getLogger().handlers == before and not logsetup.configured()


def test_log_file_platform_is_the_platform_log_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = logsetup.LogSettings(file=Path("platform"))
    with logsetup.session(settings, app="chunksync-server"):
        logging.getLogger("chunksync_server").info("started", extra={"token": "t0k"})
    path = tmp_path / "state" / "chunksync-server" / "log" / "chunksync-server.log"
    (doc,) = _lines(path)
    assert (doc["event"], doc["token"], doc["logger"]) == (
        "started",
        "[redacted]",
        "chunksync_server",
    )
