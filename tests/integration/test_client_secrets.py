"""Secrets at rest and the doctor bundle, through the real CLI and a real server
(issue 19): the folder key is outside the folder (new folders, and old ones after the
migration), no secret reaches any log line, and the doctor bundle holds no secret and
no file name unless asked."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

import pytest

from tests.helpers.cli_setup import PASSPHRASE, CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.server import DEFAULT_PASSWORD

pytestmark = pytest.mark.integration

SECRET_NAME = "quarterly-salaries-2026.xlsx"
FIFO_NAME = "private-pipe-of-bob"


def _stored_key(w: CliWorld, device: str) -> tuple[Path, bytes]:
    (path,) = (w.home(device) / "secrets").iterdir()
    return path, base64.b64decode(path.read_text())


def test_an_old_folder_is_migrated_out_of_the_folder(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    assert not (a / ".chunksync" / "key").exists()
    stored, key = _stored_key(w, "laptop")
    # make it look as an older version left it: the key inside the folder, no key_ref
    (a / ".chunksync" / "key").write_bytes(key)
    stored.unlink()
    config = json.loads((a / ".chunksync" / "config.json").read_text())
    del config["key_ref"]
    (a / ".chunksync" / "config.json").write_text(json.dumps(config))

    (a / "f.txt").write_text("still syncs")
    result = w.sync("laptop")
    assert "moved the folder key" in result.stderr
    assert not (a / ".chunksync" / "key").exists()  # outside the folder after migration
    moved, again = _stored_key(w, "laptop")
    assert again == key and a not in moved.parents
    assert "in sync" in w.sync("laptop").output


def _secrets_of(w: CliWorld, device: str, folder: Path) -> list[str]:
    cred = json.loads((w.home(device) / "credentials.json").read_text())["servers"][w.url]
    _, key = _stored_key(w, device)
    return [cred["token"], key.hex(), base64.b64encode(key).decode(), DEFAULT_PASSWORD, PASSPHRASE]


def test_no_secret_in_any_log_line_or_doctor_bundle(
    cli_world: CliWorld, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = cli_world
    log_file = w.base / "daemon.log"
    monkeypatch.setenv("CHUNKSYNC_LOG_FILE", str(log_file))
    outputs = []
    with caplog.at_level(logging.DEBUG):
        a = w.init("laptop")
        (a / SECRET_NAME).write_text("numbers")
        os.mkfifo(a / FIFO_NAME)  # a failed item, named in status
        outputs.append(w.run("laptop", "sync", str(a), ok=False).output)
        w.join("desktop")
        outputs += [w.run("laptop", *cmd).output for cmd in (["devices"], ["folders"])]
        outputs.append(w.run("laptop", "status", str(a)).output)
        outputs.append(w.run("laptop", "log", str(a), SECRET_NAME).output)
        log_file.write_text(f"chunksync: sync: uploaded {SECRET_NAME} ({a}/{SECRET_NAME})\n")
        bundle = w.run("laptop", "doctor", str(a)).stdout
        named = w.run("laptop", "doctor", str(a), "--include-names").stdout
    secrets = _secrets_of(w, "laptop", a) + _secrets_of(w, "desktop", w.folder("desktop"))
    lines = [r.getMessage() for r in caplog.records] + [caplog.text, *outputs]
    for secret in secrets:
        assert not any(secret in line for line in lines)
        assert secret not in bundle and secret not in named

    doc = json.loads(bundle)
    assert SECRET_NAME not in bundle and str(a) not in bundle and FIFO_NAME not in bundle
    assert doc["status"]["failed_by_reason"] and doc["status"]["failed"][0]["path"] == "<name>"
    assert doc["server"]["reachable"] and doc["server"]["token_accepted"]
    assert isinstance(doc["server"]["clock_skew_s"], float)
    assert doc["credential"]["token"] == "present"
    assert doc["secrets"] == {
        "store": "file",
        "folder_key_in_folder": False,
        "folder_key_stored": True,
    }
    assert doc["index"]["format"] == 1 and doc["status"]["folder"] == "docs"
    assert doc["log"]["lines"] == ["chunksync: sync: uploaded <name> (<folder>/<name>)"]
    assert {"chunksync", "python", "platform", "libraries"} <= set(doc["versions"])
    assert SECRET_NAME in named and str(a) in named


def test_doctor_without_a_folder_or_server(cli_world: CliWorld, tmp_path: Path) -> None:
    w = cli_world
    (tmp_path / "plain").mkdir()
    bad = w.run("x", "doctor", str(tmp_path / "plain"), ok=False)
    assert bad.exit_code == 2 and "not a chunksync folder" in bad.output
    out = tmp_path / "bundle.json"
    w.run("x", "doctor", "-o", str(out))
    doc = json.loads(out.read_text())
    assert out.stat().st_mode & 0o777 == 0o600
    assert doc["credential"] == {"logged_in": False} and doc["server"]["reachable"] is None
