"""Nothing is skipped silently (issue 11), through the real CLI and a real server: every
kind of path that cannot be synced is a failed item, with the reason and what to do,
in ``sync`` (text and --json, exit 12) and in ``status`` of the stopped folder; the rest
of the folder syncs; the item clears once the path is fixed.

Root reads every file whatever its mode, so "permission denied" is injected at the
scanner's open; a file that vanishes or keeps changing while it is read is made so at
the same place (the scanner's own calls, on real files)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from chunksync import scanner as scanner_mod
from chunksync.errors import EXIT_SKIPPED
from chunksync.paths import display
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.foreign import LONG_NAME, push_foreign_file


@dataclass
class Faults:
    """The scanner's open, with faults for some file names (a real file, a real open)."""

    deny: set[str]
    vanish: set[str]
    grow: set[str]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_open, real_chunks = os.open, scanner_mod._Reader._chunks
        faults = self

        def fault_open(path, flags, *args, **kw):  # type: ignore[no-untyped-def]
            name = os.path.basename(os.fsdecode(path))
            if not kw and name in faults.deny:
                raise PermissionError(13, "Permission denied", path)
            if not kw and name in faults.vanish and os.path.exists(path):
                os.unlink(path)
            return real_open(path, flags, *args, **kw)

        def growing(self, fd, size):  # type: ignore[no-untyped-def]
            yield from real_chunks(self, fd, size)
            path = os.readlink(f"/proc/self/fd/{fd}")
            if os.path.basename(path) in faults.grow:
                with open(path, "ab") as out:  # written to while being read
                    out.write(b"+")

        monkeypatch.setattr(scanner_mod.os, "open", fault_open)
        monkeypatch.setattr(scanner_mod._Reader, "_chunks", growing)


@dataclass(frozen=True)
class Case:
    kind: str
    path: str  # as shown
    make: Callable[[Path, Faults], None]
    fix: Callable[[Path, Faults], None]
    reason: str


def _bad_utf8(a: Path, _f: Faults) -> None:
    fd = os.open(os.fsencode(a) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"latin-1 name")
    os.close(fd)


def _twins(a: Path, _f: Faults) -> None:
    (a / "cafe\u0301.txt").write_text("decomposed (macOS style)")
    (a / "caf\u00e9.txt").write_text("composed")


def _faulty(names: Callable[[Faults], set[str]], name: str) -> Callable[[Path, Faults], None]:
    """Make: a file ``name`` with a fault (the set ``names`` picks) on it."""

    def make(a: Path, f: Faults) -> None:
        names(f).add(name)
        (a / name).write_text(f"{name}, with a fault")

    return make


CASES = [
    Case(
        "unreadable",
        "secret.txt",
        _faulty(lambda f: f.deny, "secret.txt"),
        lambda a, f: f.deny.clear(),
        "Permission denied",
    ),
    Case(
        "not-utf8",
        "bad\udcff.txt",
        _bad_utf8,
        lambda a, f: os.rename(os.fsencode(a) + b"/bad\xff.txt", a / "bad.txt"),
        "not UTF-8",
    ),
    Case(
        "nfc-twin",
        "cafe\u0301.txt",
        _twins,  # the NFC spelling syncs, its NFD twin is skipped
        lambda a, f: (a / "cafe\u0301.txt").rename(a / "cafe-2.txt"),
        "same NFC name",
    ),
    Case(
        "special",
        "pipe",
        lambda a, f: os.mkfifo(a / "pipe"),
        lambda a, f: (a / ".chunksyncignore").write_text("pipe\n"),
        "special file",
    ),
    Case(
        "vanished",
        "flaky.txt",
        _faulty(lambda f: f.vanish, "flaky.txt"),
        lambda a, f: f.vanish.clear(),
        "vanished",
    ),
    Case(
        "being-written",
        "busy.log",
        _faulty(lambda f: f.grow, "busy.log"),
        lambda a, f: f.grow.clear(),
        "kept changing",
    ),
]


def _sync_json(w: CliWorld, device: str) -> tuple[int, dict]:
    result = w.run(device, "sync", str(w.folder(device)), "--json", ok=False)
    return result.exit_code, json.loads(result.stdout)


def _status(w: CliWorld, device: str) -> dict:
    return json.loads(w.run(device, "status", str(w.folder(device)), "--json").stdout)


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_each_kind_of_unsyncable_path_is_a_failed_item_until_fixed(
    cli_world: CliWorld, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    w = cli_world
    a = w.init("laptop")
    b = w.join("desktop")
    faults = Faults(set(), set(), set())
    faults.install(monkeypatch)
    case.make(a, faults)
    (a / "also.txt").write_text("the rest syncs")

    code, doc = _sync_json(w, "laptop")
    assert code == EXIT_SKIPPED, doc
    [item] = doc["failed"]
    assert doc["failed_items"] == 1
    assert (item["path"], item["kind"]) == (case.path, case.kind) and case.reason in item["reason"]
    assert item["hint"] and item["since"] > 0
    w.sync("desktop")
    assert (b / "also.txt").read_text() == "the rest syncs"

    # the stopped folder says so too, with what to do
    status = _status(w, "laptop")
    assert status["failed_items"] == 1 and status["failed"][0]["path"] == case.path
    text = w.run("laptop", "status", str(a)).output
    assert f"  {display(case.path)}: " in text and item["hint"] in text

    case.fix(a, faults)
    fixed = w.run("laptop", "sync", str(a))
    assert fixed.exit_code == 0 and "not synced" not in fixed.output
    assert _status(w, "laptop")["failed_items"] == 0


def test_sync_text_names_each_item_and_what_to_do(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    os.mkfifo(a / "pipe")
    _bad_utf8(a, Faults(set(), set(), set()))
    (a / "a:b.txt").write_text("fine here, not on Windows")
    result = w.run("laptop", "sync", str(a), ok=False)
    assert result.exit_code == EXIT_SKIPPED
    lines = result.output.splitlines()
    assert lines[0] == f"2 items not synced (see 'chunksync status {a}'):"
    assert any(
        line.startswith("  bad\\udcff.txt: name is not UTF-8") and "convmv" in line
        for line in lines
    )
    assert any(
        line.startswith("  pipe: special file") and ".chunksyncignore" in line for line in lines
    )
    # a name other systems cannot hold is synced, and said, but is not a skipped item
    assert any(line.startswith("  a:b.txt: ") and "Windows" in line for line in lines)
    assert json.loads(w.run("laptop", "status", str(a), "--json").stdout)["failed_items"] == 2


def test_a_server_entry_this_device_cannot_create_is_a_failed_item_here(
    cli_world: CliWorld,
) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "plain.txt").write_text("plain")
    w.sync("laptop")
    b = w.join("desktop")
    push_foreign_file(a, w.home("laptop"))
    (a / "later.txt").write_text("later")
    code, doc = _sync_json(w, "desktop")
    assert code == EXIT_SKIPPED
    assert [(i["path"], i["kind"]) for i in doc["failed"]] == [(LONG_NAME, "unwritable-here")]
    assert "255" in doc["failed"][0]["reason"] and "other" in doc["failed"][0]["hint"]
    since = doc["failed"][0]["since"]
    assert w.run("laptop", "sync", str(a), ok=False).exit_code == EXIT_SKIPPED  # Linux too
    code, doc = _sync_json(w, "desktop")  # still there: the same item, not a new one
    assert code == EXIT_SKIPPED and doc["failed"][0]["since"] == since
    assert (b / "plain.txt").read_text() == "plain" and (b / "later.txt").read_text() == "later"
    assert _status(w, "desktop")["failed"][0]["path"] == LONG_NAME
