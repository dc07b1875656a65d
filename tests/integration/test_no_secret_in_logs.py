"""No secret in any log line: a real server and a real daemon, a login, an init, a
sync of a file, a stop; then every line of both logs is one JSON object (neither is a
terminal) and none holds the device token, the password or the folder passphrase."""

from __future__ import annotations

import json
import os

import pytest

from chunksync.config import load_credential
from tests.helpers.cli_setup import PASSPHRASE, CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.daemons import DaemonProcess
from tests.helpers.server import DEFAULT_PASSWORD

pytestmark = pytest.mark.integration


def test_no_token_password_or_passphrase_in_the_server_or_daemon_log(
    cli_world: CliWorld,
) -> None:
    w = cli_world
    a = w.init("laptop")
    os.environ["CHUNKSYNC_HOME"] = str(w.home("laptop"))
    try:
        token = load_credential().token
    finally:
        del os.environ["CHUNKSYNC_HOME"]
    with DaemonProcess(w, "laptop") as daemon:
        daemon.wait_ready()
        (a / "notes.txt").write_text("hello")
        daemon.wait_at_head()
    server_log = w.server.log_path.read_text()
    daemon_log = daemon.log_path.read_text()
    for text in (server_log, daemon_log):
        docs = [json.loads(line) for line in text.splitlines()]  # all JSON, one format
        assert docs and all({"time", "level", "event"} <= d.keys() for d in docs)
        for secret in (token, DEFAULT_PASSWORD, PASSPHRASE):
            assert secret not in text
    routes = {json.loads(line).get("route") for line in server_log.splitlines()}
    assert "/v1/login" in routes and "/v1/folders/{folder}/head" in routes
    assert "docs" not in server_log  # the folder's name never appears, only route patterns
