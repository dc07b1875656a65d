"""^C and SIGTERM end a command within a second, cleanly, and the next run goes on.

The CLI runs as a real subprocess so real signals arrive. Key slots are wrapped at the
KDF floor (``MIN_PARAMS``), which a subprocess accepts, instead of the test-only cost.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync.crypto import keyslots
from tests.helpers.cli_setup import PASSPHRASE, CliWorld
from tests.helpers.daemons import REPO, wait_until
from tests.helpers.devices import tree_of
from tests.helpers.server import DEFAULT_PASSWORD, DEFAULT_USER, ServerProcess, create_user

FILES = 5000


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliWorld]:
    monkeypatch.setattr(keyslots, "DEFAULT_PARAMS", keyslots.MIN_PARAMS)
    data = tmp_path / "server"
    data.mkdir()
    create_user(data, DEFAULT_USER)
    with ServerProcess(data) as proc:
        yield CliWorld(proc, tmp_path)


def small_files(root: Path, count: int = FILES) -> None:
    for i in range(count):
        d = root / f"d{i % 50:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(f"file {i}\n".encode() * (1 + i % 7))


def start_cli(w: CliWorld, device: str, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CHUNKSYNC_HOME": str(w.home(device)),
        "CHUNKSYNC_PASSPHRASE": PASSPHRASE,
        "CHUNKSYNC_PASSWORD": DEFAULT_PASSWORD,
    }
    env.pop("CHUNKSYNC_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "chunksync.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def count_files(root: Path) -> int:
    if not root.is_dir():
        return 0
    return sum(len(files) for top, _, files in os.walk(root) if ".chunksync" not in top)


def interrupt(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> tuple[float, int, str]:
    assert proc.poll() is None, "the command finished before it could be interrupted"
    started = time.monotonic()
    proc.send_signal(sig)
    rc = proc.wait(timeout=30)
    elapsed = time.monotonic() - started
    _, err = proc.communicate()
    return elapsed, rc, err.decode(errors="replace")


def assert_no_partial_files(mine: Path, source: Path) -> None:
    for top, _, files in os.walk(mine):
        if ".chunksync" in top:
            continue
        for name in files:
            path = Path(top) / name
            rel = path.relative_to(mine)
            assert path.read_bytes() == (source / rel).read_bytes(), f"partial file {rel}"


def test_sigint_stops_a_join_within_a_second_and_the_next_join_completes(world: CliWorld) -> None:
    w = world
    a = w.folder("laptop")
    small_files(a)
    w.init("laptop")
    w.login("desktop")
    b = w.folder("desktop")
    proc = start_cli(w, "desktop", "join", str(b), "--folder", "docs")
    wait_until(
        lambda: count_files(b) >= 20 or proc.poll() is not None,
        60,
        interval=0.02,
        what="the join to start writing files",
    )
    elapsed, rc, err = interrupt(proc)
    assert elapsed < 1.0, f"took {elapsed:.2f} s to stop"
    assert rc == 130 and "Traceback" not in err and err.strip().endswith("interrupted"), err
    assert count_files(b) < FILES
    assert_no_partial_files(b, a)

    again = start_cli(w, "desktop", "join", str(b), "--folder", "docs")
    out, err2 = again.communicate(timeout=300)
    assert again.returncode == 0, err2.decode()
    assert tree_of(a, mtimes=False) == tree_of(b, mtimes=False)


def test_second_sigint_exits_at_once(world: CliWorld) -> None:
    w = world
    a = w.folder("laptop")
    small_files(a)
    w.login("laptop")
    proc = start_cli(w, "laptop", "init", str(a), "--folder", "docs")
    wait_until(
        lambda: (a / ".chunksync" / "index").exists() or proc.poll() is not None,
        60,
        interval=0.02,
        what="init to start",
    )
    proc.send_signal(signal.SIGINT)
    elapsed, rc, err = interrupt(proc)
    assert elapsed < 1.0 and rc == 130 and "Traceback" not in err, err


def server_objects(w: CliWorld) -> int:
    from chunksync_server import admin

    return admin.stats(w.server.data_dir).objects


def test_interrupted_init_continues_and_uploads_only_what_the_server_lacks(world: CliWorld) -> None:
    w = world
    a = w.folder("laptop")
    small_files(a)
    w.login("laptop")
    proc = start_cli(w, "laptop", "init", str(a), "--folder", "docs")
    wait_until(
        lambda: server_objects(w) >= 200 or proc.poll() is not None,
        120,
        interval=0.02,
        what="init to upload some objects",
    )
    _, rc, err = interrupt(proc)
    assert rc == 130 and "Traceback" not in err, err
    before = server_objects(w)
    assert before > 0

    status = json.loads(w.run("laptop", "status", str(a), "--json").output)
    assert status["local_changes_pending"] is True and status["base"] is None

    again = w.run("laptop", "init", str(a), "--folder", "docs")
    assert "continuing" in again.output
    uploaded = int(re.search(r"uploaded (\d+) objects", again.output).group(1))  # type: ignore[union-attr]
    assert uploaded == server_objects(w) - before  # nothing the server held was sent again
    b = w.join("desktop")
    assert tree_of(a, mtimes=False) == tree_of(b, mtimes=False)
    assert (
        json.loads(w.run("laptop", "status", str(a), "--json").output)["local_changes_pending"]
        is False
    )


def test_init_refuses_a_bad_directory_before_creating_the_server_folder(world: CliWorld) -> None:
    w = world
    w.login("laptop")
    not_a_dir = w.base / "file.txt"
    not_a_dir.write_text("x")
    result = w.run("laptop", "init", str(not_a_dir / "sub"), "--folder", "docs", ok=False)
    assert result.exit_code == 2
    result = w.run(
        "laptop", "init", str(w.folder("laptop")), "--folder", "docs", passphrase="", ok=False
    )
    assert result.exit_code == 2 and "passphrase" in result.output
    assert server_objects(w) == 0
    from chunksync_server import admin

    assert admin.list_folders(w.server.data_dir) == []
    w.run("laptop", "init", str(w.folder("laptop")), "--folder", "docs")  # the name is still free
