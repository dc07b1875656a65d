"""Everyday client commands (issue 19), through the real CLI and a real server: one
test per command and per error message: -h, --version, the default folder, relative
times, --json errors, log of an unknown path, folders, logout, devices, totp, ignore,
re-login replacing the device's token, a human status, and the messages for a server
that is not running and for a URL with an extra path."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pyotp
import pytest

from chunksync.history import parse_time
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.server import DEFAULT_USER

pytestmark = pytest.mark.integration


def _json(result) -> object:  # type: ignore[no-untyped-def]
    return json.loads(result.stdout)


def _creds(w: CliWorld, device: str) -> dict:  # type: ignore[type-arg]
    doc = json.loads((w.home(device) / "credentials.json").read_text())
    return doc["servers"][w.url]  # type: ignore[no-any-return]


def test_help_short_flag_and_version(cli_world: CliWorld) -> None:
    w = cli_world
    top = w.run("x", "-h")
    assert "Commands:" in top.output and "folders" in top.output
    for cmd in (["sync"], ["devices"], ["devices", "revoke"], ["ignore", "add"], ["totp"]):
        assert "Usage:" in w.run("x", *cmd, "-h").output, cmd
    assert w.run("x", "--version").output.startswith("chunksync, version ")


def test_default_folder_is_the_one_around_the_current_directory(
    cli_world: CliWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "sub").mkdir()
    (a / "sub" / "note.txt").write_text("hello")
    monkeypatch.chdir(a / "sub")
    w.run("laptop", "sync")
    assert _json(w.run("laptop", "status", "--json"))["folder"] == "docs"  # type: ignore[index]
    history = _json(w.run("laptop", "log", "note.txt", "--json"))  # relative to here
    assert history and history[0]["change"]  # type: ignore[index]
    monkeypatch.chdir(w.base)
    outside = w.run("laptop", "status", ok=False)
    assert outside.exit_code == 2 and "not inside a synced folder" in outside.output


def test_restore_at_a_relative_time(cli_world: CliWorld, tmp_path: Path) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "f.txt").write_text("v1")
    w.sync("laptop")
    out = tmp_path / "out"
    w.run("laptop", "restore", str(a), "--at", "in 1 hour", "--to", str(out))
    assert (out / "f.txt").read_text() == "v1"
    early = w.run("laptop", "restore", str(a), "--at", "yesterday", "--to", str(out), ok=False)
    assert early.exit_code == 2 and "no snapshot at or before yesterday" in early.output
    bad = w.run("laptop", "restore", str(a), "--at", "blorp o'clock", "--to", str(out), ok=False)
    assert bad.exit_code == 2 and "'2 hours ago'" in bad.output


def test_relative_times_parse() -> None:
    now = time.time()
    assert abs(now - 7200 - parse_time("2 hours ago")) < 60
    assert abs(now - 86400 - parse_time("yesterday")) < 3600 * 25
    assert parse_time("2026-01-01T00:00:00Z") == 1767225600.0


def test_json_errors_are_one_json_object(cli_world: CliWorld, tmp_path: Path) -> None:
    w = cli_world
    (tmp_path / "plain").mkdir()
    result = w.run("x", "status", str(tmp_path / "plain"), "--json", ok=False)
    assert result.exit_code == 2
    doc = _json(result)
    assert doc == {"error": doc["error"], "exit_code": 2}  # type: ignore[index]
    assert "not a chunksync folder" in doc["error"]  # type: ignore[index]


def test_log_of_an_unknown_path_says_so(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "real.txt").write_text("x")
    w.sync("laptop")
    result = w.run("laptop", "log", str(a), "no/such.txt", ok=False)
    assert result.exit_code == 2 and "no history for 'no/such.txt'" in result.output
    events = w.run("laptop", "log", str(a), "no/such.txt", "--events", ok=False)
    assert events.exit_code == 2 and "no change of 'no/such.txt'" in events.output


def test_folders_lists_what_one_can_join(cli_world: CliWorld) -> None:
    w = cli_world
    w.login("laptop")
    assert "no folders yet" in w.run("laptop", "folders").output
    w.init("laptop", folder="photos")
    rows = _json(w.run("laptop", "folders", "--json"))
    assert [(r["name"], r["role"]) for r in rows] == [("photos", "owner")]  # type: ignore[index,union-attr]
    text = w.run("laptop", "folders").output
    assert "photos" in text and "owner" in text and "chunksync join" in text


def test_relogin_replaces_this_devices_token(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    first = _creds(w, "laptop")
    again = w.run("laptop", "login", w.url, "--user", DEFAULT_USER, "--device-name", "laptop")
    assert "old token is revoked" in again.output
    second = _creds(w, "laptop")
    assert second["device_id"] == first["device_id"] and second["token"] != first["token"]
    devices = _json(w.run("laptop", "devices", "--json"))
    assert len(devices) == 1 and devices[0]["current"]  # type: ignore[index,arg-type]
    w.sync("laptop")  # the new token works
    # the old token does not
    import requests

    old = requests.get(
        w.url + "/v1/whoami", headers={"Authorization": f"Bearer {first['token']}"}, timeout=10
    )
    assert old.status_code == 401
    assert a.exists()


def test_devices_list_and_revoke(cli_world: CliWorld) -> None:
    w = cli_world
    w.init("laptop")
    w.login("phone")
    rows = _json(w.run("laptop", "devices", "--json"))
    assert {r["name"] for r in rows} == {"laptop", "phone"}  # type: ignore[union-attr,index]
    phone = next(r for r in rows if r["name"] == "phone")  # type: ignore[union-attr,index]
    text = w.run("laptop", "devices").output
    assert "phone" in text and "active" in text and "* " in text
    assert "revoked device" in w.run("laptop", "devices", "revoke", phone["id"]).output
    refused = w.run("phone", "folders", ok=False)
    assert refused.exit_code == 11 and "chunksync login" in refused.output
    unknown = w.run("laptop", "devices", "revoke", "0" * 16, ok=False)
    assert unknown.exit_code == 2 and "no device" in unknown.output
    bad = w.run("laptop", "devices", "revoke", "nonsense", ok=False)
    assert bad.exit_code == 2 and "is not a device id" in bad.output


def test_logout_revokes_and_forgets_the_token(cli_world: CliWorld) -> None:
    w = cli_world
    w.login("laptop")
    token = _creds(w, "laptop")["token"]
    assert "logged out of" in w.run("laptop", "logout").output
    assert w.url not in json.loads((w.home("laptop") / "credentials.json").read_text())["servers"]
    import requests

    r = requests.get(w.url + "/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 401
    again = w.run("laptop", "logout", ok=False)
    assert again.exit_code == 2 and "not logged in" in again.output


def test_totp_enable_and_disable(cli_world: CliWorld) -> None:
    w = cli_world
    w.login("laptop")
    doc = _json(w.run("laptop", "totp", "enable", "--json"))
    secret = doc["secret"]  # type: ignore[index]
    assert doc["uri"].startswith("otpauth://")  # type: ignore[index]
    twice = w.run("laptop", "totp", "enable", ok=False)
    assert twice.exit_code == 2 and "already enabled" in twice.output
    wrong = w.run("laptop", "totp", "disable", "--code", "000000", ok=False)
    if pyotp.TOTP(secret).verify("000000"):  # pragma: no cover - one chance in a million
        return
    assert wrong.exit_code == 2 and "wrong or already used" in wrong.output
    need = w.run("phone", "login", w.url, "--user", DEFAULT_USER, ok=False)
    assert need.exit_code == 7 and "TOTP" in need.output
    code = pyotp.TOTP(secret).now()
    assert "TOTP disabled" in w.run("laptop", "totp", "disable", "--code", code).output
    not_on = w.run("laptop", "totp", "disable", "--code", code, ok=False)
    assert not_on.exit_code == 2 and "not enabled" in not_on.output


def test_ignore_list_add_remove(cli_world: CliWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / ".chunksyncignore").write_text("# mine\n*.tmp\n")
    monkeypatch.chdir(a)
    assert "added 2 patterns" in w.run("laptop", "ignore", "add", "build/", "*.log", "*.tmp").output
    assert (a / ".chunksyncignore").read_text() == "# mine\n*.tmp\nbuild/\n*.log\n"
    w.run("laptop", "ignore", "add", "--local", "private/")
    doc = _json(w.run("laptop", "ignore", "list", "--json"))
    assert doc == {"defaults": [], "shared": ["*.tmp", "build/", "*.log"], "local": ["private/"]}
    assert ".DS_Store" in w.run("laptop", "ignore", "list", "--defaults").output
    w.run("laptop", "ignore", "remove", "*.tmp")
    assert (a / ".chunksyncignore").read_text() == "# mine\nbuild/\n*.log\n"
    missing = w.run("laptop", "ignore", "remove", "nope", ok=False)
    assert missing.exit_code == 2 and "not in .chunksyncignore: nope" in missing.output
    assert not list((a / ".chunksync" / "tmp").glob("ignore.*"))
    (a / "x.log").write_text("ignored")
    assert "x.log" not in w.sync("laptop").output


def test_status_is_a_short_table_with_units(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    text = w.run("laptop", "status", str(a)).output
    assert "None" not in text
    lines = text.splitlines()
    assert lines[0].startswith("folder ") and "docs" in lines[0]
    assert any(ln.startswith("in sync ") and ln.endswith("yes") for ln in lines)
    assert any("bandwidth" in ln and "unlimited" in ln for ln in lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_server_that_is_not_running_is_named_at_once(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    url = f"http://127.0.0.1:{_free_port()}"
    login = w.run("x", "login", url, "--user", DEFAULT_USER, ok=False)
    assert login.exit_code == 6
    assert f"cannot reach server at {url}: connection refused" in login.output
    assert "chunksync-server serve" in login.output
    config = json.loads((a / ".chunksync" / "config.json").read_text())
    cred_doc = json.loads((w.home("laptop") / "credentials.json").read_text())
    entry = cred_doc["servers"].pop(w.url)
    entry["server"] = url
    cred_doc["servers"][url] = entry
    (w.home("laptop") / "credentials.json").write_text(json.dumps(cred_doc))
    config["server"] = url
    (a / ".chunksync" / "config.json").write_text(json.dumps(config))
    sync = w.run("laptop", "sync", str(a), ok=False)  # not after seconds of retries
    assert sync.exit_code == 6 and "connection refused" in sync.output


def test_a_url_with_an_extra_path_is_explained(cli_world: CliWorld) -> None:
    w = cli_world
    result = w.run("x", "login", w.url + "/chunksync/api", "--user", DEFAULT_USER, ok=False)
    assert result.exit_code == 2
    assert "not the base URL of a chunksync server" in result.output and w.url in result.output


def test_an_index_from_a_newer_version_is_refused(cli_world: CliWorld) -> None:
    from chunksync.storage.index import Index

    w = cli_world
    a = w.init("laptop")
    with Index.open(a / ".chunksync" / "index") as index, index.write() as wr:
        wr.set_meta("format", b"99")
    result = w.run("laptop", "sync", str(a), ok=False)
    assert result.exit_code == 2 and "written by a newer chunksync" in result.output
