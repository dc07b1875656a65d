"""Nothing is skipped silently, in a running daemon (issue 11): every kind of failed item
is in the daemon's ``status`` (socket), logged once however many rounds pass, logged
again when it clears, and still in ``status`` once the daemon has stopped."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.daemons import DaemonProcess, read_or_none, wait_until
from tests.helpers.fault_hooks import FaultyDaemon
from tests.helpers.foreign import LONG_NAME, push_foreign_file

EXPECTED = {
    ("pipe", "special"),
    ("bad\udcff.txt", "not-utf8"),
    ("cafe\u0301.txt", "nfc-twin"),  # the NFD twin is the one skipped
    ("secret.txt", "unreadable"),
    ("a:b.txt", "unportable"),
    ("busy.log", "being-written"),
}


def _items(status: dict) -> set[tuple[str, str]]:
    return {(i["path"], i["kind"]) for i in status["failed"]}


def _make_odd_paths(a: Path) -> None:
    os.mkfifo(a / "pipe")
    fd = os.open(os.fsencode(a) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    (a / "cafe\u0301.txt").write_text("decomposed")
    (a / "caf\u00e9.txt").write_text("composed")
    (a / "secret.txt").write_text("unreadable here")
    (a / "a:b.txt").write_text("fine on Linux")
    (a / "flaky.txt").write_text("gone while read")
    (a / "busy.log").write_text("written to whenever it is read")
    (a / "plain.txt").write_text("plain")


def test_a_daemon_reports_each_failed_item_once_and_clears_it(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    b = w.join("desktop")
    _make_odd_paths(a)
    faults = {"deny": ["secret.txt"], "vanish": ["flaky.txt"], "grow": ["busy.log"]}
    with FaultyDaemon(w, "laptop", faults) as da, DaemonProcess(w, "desktop") as db:
        da.wait_ready()
        db.wait_ready()
        wait_until(lambda: read_or_none(b / "plain.txt") == b"plain", what="plain.txt on B")
        status = wait_until(
            lambda: (s := da.status()) and _items(s) >= EXPECTED and s,
            what="every failed item in the daemon's status",
        )
        # a:b.txt syncs: listed, not counted as skipped
        assert status["failed_items"] == sum(
            1 for i in status["failed"] if i["kind"] != "unportable"
        )
        assert all(i["hint"] for i in status["failed"])
        assert read_or_none(b / "a:b.txt") == b"fine on Linux"

        for n in range(3):  # more rounds: nothing is logged again
            (a / f"more-{n}.txt").write_text(str(n))
            wait_until(
                lambda n=n: read_or_none(b / f"more-{n}.txt") == str(n).encode(), what=f"more-{n}"
            )
        logged = Counter((e["path"], e["kind"]) for e in da.events("failed_item"))
        assert all(logged[key] == 1 for key in EXPECTED), logged
        assert logged[("flaky.txt", "vanished")] == 1  # vanished while read: said once...
        cleared = {(e["path"], e["kind"]) for e in da.events("failed_item_cleared")}
        assert ("flaky.txt", "vanished") in cleared  # ...and cleared: it is gone

        (a / "pipe").unlink()  # fixed
        wait_until(lambda: ("pipe", "special") not in _items(da.status()), what="pipe cleared")
        assert ("pipe", "special") in {
            (e["path"], e["kind"]) for e in da.events("failed_item_cleared")
        }

        # a name this device cannot create, made on a third device
        mac = w.join("mac")
        push_foreign_file(mac, w.home("mac"))
        for d in (da, db):
            wait_until(
                lambda d=d: (LONG_NAME, "unwritable-here") in _items(d.status()),
                what=f"the long name reported by {d.device}",
            )
        assert da.terminate() == 0

    # the stopped folder still says so
    doc = json.loads(w.run("laptop", "status", str(a), "--json").stdout)
    assert doc["state"].startswith("idle") and (EXPECTED - {("pipe", "special")}) <= _items(doc)
    assert (LONG_NAME, "unwritable-here") in _items(doc)
