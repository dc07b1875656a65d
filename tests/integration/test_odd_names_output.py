"""Every output shows odd names escaped, never raw control characters; JSON stays exact.

File names with control characters (``\\x01``, a terminal escape ``\\x1b[31m``, DEL,
the C1 ``\\x85``), a backslash, and a name that is not UTF-8 at all, synced into a folder
whose own path is odd too, go through every command that shows a path or a name: sync, log
(all, one path, the journal), status, conflicts, resolve, restore, verify, and errors
that name a path. No raw control character (nor a lone surrogate, nor a replacement
character from bytes that were not UTF-8) may reach stdout or stderr; every ``--json``
output parses and holds the names exactly.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from pathlib import Path

import pytest
from click.testing import Result

from chunksync.daemon import log_event
from chunksync.output import DisplayFormatter
from chunksync.paths import display
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture

ODD = ["ctl\x01.txt", "red\x1b[31m.txt", "del\x7f.txt", "nel\x85.txt", "back\\slash.txt"]
RED = "red\x1b[31m.txt"
ODD_DIR = "desk\x1b]0;owned\x07top"  # device names are plain (the server refuses others)
BAD_UTF8 = b"bad\xff.txt"
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffd]")


def _clean(result: Result) -> Result:
    for stream in (result.stdout, result.stderr):
        assert not RAW.search(stream), f"raw control character in {stream!r}"
    return result


def _json(result: Result) -> object:
    return json.loads(_clean(result).stdout)


def _run(w: CliWorld, device: str, *args: str, ok: bool = True) -> Result:
    return _clean(w.run(device, *args, ok=ok))


@pytest.mark.skipif(sys.platform != "linux", reason="names that are not UTF-8 exist on Linux only")
def test_every_command_escapes_odd_names_and_json_keeps_them(
    cli_world: CliWorld, tmp_path: Path
) -> None:
    w = cli_world
    a = w.init("laptop")
    for name in ODD:
        (a / name).write_text(f"content of {name}")
    (a / "dir\x1b[0m").mkdir()
    (a / "dir\x1b[0m" / "inner\x01.txt").write_text("nested")
    fd = os.open(os.fsencode(a) + b"/" + BAD_UTF8, os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)

    text = _run(w, "laptop", "sync", str(a), ok=False)
    assert text.exit_code == 12  # synced, one item skipped
    assert display("bad\udcff.txt") in text.stdout  # reported as a failed item, escaped
    doc = _json(w.run("laptop", "sync", str(a), "--json", ok=False))
    assert any(os.fsencode(x["path"]) == BAD_UTF8 for x in doc["failed"])  # exact bytes back
    os.unlink(os.fsencode(a) + b"/" + BAD_UTF8)

    w.login("desktop")
    b = w.base / "folders" / ODD_DIR
    assert display(str(b)) in _run(w, "desktop", "join", str(b), "--folder", "docs").stdout
    assert sorted(p.name for p in b.iterdir() if p.name in ODD) == sorted(ODD)
    (a / RED).write_text("laptop's edit")
    (b / RED).write_text("desktop's edit")
    _run(w, "laptop", "sync", str(a))
    _run(w, "desktop", "sync", str(b))  # makes a conflicted copy named after the odd name
    _run(w, "laptop", "sync", str(a))

    snapshots = _json(w.run("laptop", "log", str(a), "--json"))
    assert {"laptop", "desktop"} <= {s["device"] for s in snapshots}
    _run(w, "laptop", "log", str(a))
    _run(w, "laptop", "log", str(a), RED)
    history = _json(w.run("laptop", "log", str(a), RED, "--json"))
    assert history
    events = _json(w.run("laptop", "log", str(a), "--events", "--json"))
    assert {"ctl\x01.txt", "dir\x1b[0m"} <= {e["path"] for e in events}
    journal = _run(w, "laptop", "log", str(a), "--events").stdout
    assert display(RED) in journal and "back\\\\slash.txt" in journal  # a backslash shows doubled

    status = _json(w.run("laptop", "status", str(a), "--json"))
    assert status["folder"] == "docs"
    _run(w, "laptop", "status", str(a))
    rows = _json(w.run("laptop", "conflicts", str(a), "--json"))
    assert [r["path"] for r in rows] == [RED] and RED in rows[0]["explanation"]
    assert display(RED) in _run(w, "laptop", "conflicts", str(a)).stdout
    assert display(RED) in _run(w, "laptop", "resolve", str(a), RED, "--keep", "both").stdout

    head = snapshots[-1]["id"]
    out = tmp_path / "restored"
    _run(w, "laptop", "restore", str(a), "--snapshot", head, "ctl\x01.txt", "--to", str(out))
    assert (out / "ctl\x01.txt").read_text() == "content of ctl\x01.txt"
    missing = _run(
        w,
        "laptop",
        "restore",
        str(a),
        "--snapshot",
        head,
        "gone\x1b[2J.txt",
        "--to",
        str(tmp_path / "r2"),
        ok=False,
    )
    assert missing.exit_code != 0 and display("gone\x1b[2J.txt") in missing.stderr
    refused = _run(w, "laptop", "resolve", str(a), "nope\x01\x1b[31m", "--keep", "mine", ok=False)
    assert refused.exit_code == 2 and display("nope\x01\x1b[31m") in refused.stderr

    (a / "nel\x85.txt").unlink()
    verify = _run(w, "laptop", "verify", str(a), ok=False)
    assert verify.exit_code == 3 and display("missing locally: nel\x85.txt") in verify.stdout


def test_daemon_lines_and_log_records_are_escaped() -> None:
    """The daemon's JSON lines keep names exact in ASCII; a log record is one escaped line."""
    stream = io.StringIO()
    log_event("conflict", stream, path=RED, copy_path="bad\udcff.txt", message="x\ny")
    line = stream.getvalue()
    assert line.count("\n") == 1 and not RAW.search(line)
    assert json.loads(line)["path"] == RED and json.loads(line)["copy_path"] == "bad\udcff.txt"
    record = logging.LogRecord(
        "chunksync.x",
        logging.WARNING,
        __file__,
        1,
        "index at %s rebuilt",
        ("/home/u/odd\x1b[31m\ndir",),
        None,
    )
    shown = DisplayFormatter("%(message)s").format(record)
    assert "\n" not in shown and not RAW.search(shown) and "odd\\x1b[31m" in shown


def test_status_from_a_daemon_shows_odd_names_escaped_and_exact_in_json(
    cli_world: CliWorld,
) -> None:
    """The control socket's answer (JSON) and ``status`` built from it."""
    import asyncio
    import threading

    from chunksync.config import FolderPaths
    from chunksync.control import ControlServer, FolderStatus

    a = cli_world.init("laptop")
    error = f"unsafe path from server '{RED}/x\x01': something"
    ready, stop = threading.Event(), threading.Event()

    async def handler(command: str) -> dict[str, object]:
        return FolderStatus("docs", "laptop", state="error", last_error=error).to_json()

    async def serve() -> None:
        server = ControlServer(FolderPaths(a.resolve()).socket, handler)
        await server.start()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.01)
        await server.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(10)
        assert _json(cli_world.run("laptop", "status", str(a), "--json"))["last_error"] == error
        assert display(error) in _run(cli_world, "laptop", "status", str(a)).stdout
    finally:
        stop.set()
        thread.join(10)
