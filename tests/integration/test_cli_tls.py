"""Devices sync over HTTPS with a self-signed server certificate given by --ca-file;
without it the certificate is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chunksync.cli import main
from chunksync.crypto import keyslots
from tests.helpers.devices import tree_of
from tests.helpers.server import DEFAULT_PASSWORD, DEFAULT_USER, ServerProcess, create_user
from tests.helpers.tls import self_signed


def test_sync_over_tls_with_a_pinned_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyslots, "DEFAULT_PARAMS", keyslots.TEST_PARAMS)
    monkeypatch.setattr(keyslots, "MIN_PARAMS", keyslots.TEST_PARAMS)
    cert, key = self_signed(tmp_path)
    data = tmp_path / "srv"
    data.mkdir()
    create_user(data, DEFAULT_USER)
    runner = CliRunner()

    def run(device: str, *args: str) -> tuple[int, str]:
        env = {
            "CHUNKSYNC_HOME": str(tmp_path / device),
            "CHUNKSYNC_PASSWORD": DEFAULT_PASSWORD,
            "CHUNKSYNC_PASSPHRASE": "tls test passphrase",
        }
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        return result.exit_code, result.output

    with ServerProcess(data, "--tls-cert", str(cert), "--tls-key", str(key)) as proc:
        url = f"https://localhost:{proc.port}"
        code, out = run("a", "login", url, "--user", DEFAULT_USER, "--device-name", "a")
        assert code != 0 and len(out.strip().splitlines()) == 1 and "certificate" in out.lower()
        for device in ("a", "b"):
            code, out = run(
                device,
                "login",
                url,
                "--user",
                DEFAULT_USER,
                "--device-name",
                device,
                "--ca-file",
                str(cert),
            )
            assert code == 0, out
        (tmp_path / "A").mkdir()
        (tmp_path / "A" / "secret.txt").write_text("over TLS")
        assert run("a", "init", str(tmp_path / "A"), "--folder", "tls")[0] == 0
        code, out = run("b", "join", str(tmp_path / "B"), "--folder", "tls")
        assert code == 0, out
        assert tree_of(tmp_path / "A") == tree_of(tmp_path / "B")
