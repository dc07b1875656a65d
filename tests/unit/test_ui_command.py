"""``chunksync ui``: the login link on the last line, a browser only with ``--open``, a
clear error when no dashboard runs; the token file is private."""

from __future__ import annotations

import os
import stat
import webbrowser
from pathlib import Path

import pytest
from click.testing import CliRunner

from chunksync.cli import main
from chunksync.config import FolderPaths
from chunksync.ui.login import LinkChecker, UiAddress, write_address

pytestmark = pytest.mark.unit


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHUNKSYNC_HOME", str(tmp_path / "home"))
    root = tmp_path / "docs"
    (root / ".chunksync").mkdir(parents=True, mode=0o700)
    (root / ".chunksync" / "config.json").write_text("{}")
    return root


def test_prints_a_one_time_link_last_and_opens_nothing(folder: Path, monkeypatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    address = UiAddress("http://127.0.0.1:8999", "secret-token", os.getpid())
    files = write_address(address, [FolderPaths(folder)])
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    result = CliRunner().invoke(main, ["ui", str(folder)])
    assert result.exit_code == 0, result.output
    url = result.output.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:8999/login?") and "secret-token" not in url
    query = dict(p.split("=") for p in url.split("?")[1].split("&"))
    assert LinkChecker("secret-token").accept(query["n"], query["t"], query["m"])
    assert opened == []
    result = CliRunner().invoke(main, ["ui", str(folder), "--open"])
    assert result.exit_code == 0 and opened == [result.output.strip().splitlines()[-1]]


def test_from_inside_the_folder_and_with_no_daemon(folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(main, ["ui"])
    assert result.exit_code != 0
    assert "no dashboard is running" in result.output and "chunksync daemon" in result.output
    gone = UiAddress("http://127.0.0.1:8999", "t", 2**22 + 12345)  # no such process
    write_address(gone, [FolderPaths(folder)])
    result = CliRunner().invoke(main, ["ui"])
    assert result.exit_code != 0 and "is gone" in result.output


async def test_a_taken_port_is_one_clear_error(folder: Path) -> None:
    import socket

    from chunksync.errors import UserError
    from chunksync.ui.app import serve_dashboard

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"127.0.0.1:{port}.*--ui-port"):
            async with serve_dashboard([], port):
                pass
